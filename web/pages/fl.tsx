import { ago, api } from "../api.ts";
import { Act, Chart, Loading, useApi } from "../ui.tsx";

// Federated learning: experiments, and one experiment's rounds with their participants, updates and the
// clients' loss and accuracy per round.

interface Round {
  round_id: string;
  index: number;
  state: string;
  model_version: number;
  new_model_version?: number;
  k_of_n: number;
  tasks: Record<string, string>;
  updates: { proplet_id: string; num_samples: number; via: string }[];
  metrics?: Record<string, number>;
  started_at: string;
  error?: string;
}
interface Experiment {
  experiment_id: string;
  state: string;
  rounds: number;
  strategy: string;
  participants: string[];
  error?: string;
  created_at: string;
  round_list: Round[];
}

export function FlPage() {
  const r = useApi<{ experiments: Experiment[] }>("/fl/experiments", (e) => e.type === "fl");
  return (
    <>
      <h1>Federated learning</h1>
      <p class="muted">
        Start an experiment with <code>propeller fl configure</code> (see <code>--help</code>); it shows up here live.
      </p>
      <Loading ready={!!r.data} error={r.error}>
        {r.data?.experiments.length === 0 ? (
          <p class="muted">No experiments yet.</p>
        ) : (
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th>Experiment</th>
                  <th>State</th>
                  <th>Rounds</th>
                  <th class="wide">Strategy</th>
                  <th class="wide">Started</th>
                </tr>
              </thead>
              <tbody>
                {r.data?.experiments.map((e) => (
                  <tr key={e.experiment_id}>
                    <td>
                      <a href={`#/fl/${encodeURIComponent(e.experiment_id)}`}>{e.experiment_id}</a>
                    </td>
                    <td>
                      {e.state}
                      {e.error && <div class="error">{e.error}</div>}
                    </td>
                    <td>
                      {e.round_list.filter((x) => x.state === "completed").length}/{e.rounds}
                    </td>
                    <td class="wide">{e.strategy}</td>
                    <td class="wide">{ago(e.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loading>
    </>
  );
}

export function ExperimentPage(p: { id: string }) {
  const path = `/fl/experiments/${encodeURIComponent(p.id)}`;
  const r = useApi<Experiment>(path, (e) => e.type === "fl" && e.experiment_id === p.id);
  const e = r.data;
  const done = (e?.round_list ?? []).filter((x) => x.metrics);
  return (
    <>
      <h1>Experiment {p.id}</h1>
      <Loading ready={!!e} error={r.error}>
        {e && (
          <>
            <p>
              {e.state} · {e.strategy} · participants {e.participants.map((x) => x.slice(0, 8)).join(", ")}
            </p>
            {e.error && <p class="error">{e.error}</p>}
            {e.state === "running" && (
              <div class="actions">
                <Act label="Stop experiment" run={() => api("POST", `${path}/stop`).then(r.reload)} />
              </div>
            )}
            <Chart
              title="Loss and accuracy per round"
              x={done.map((x) => x.index)}
              series={[
                { label: "loss", values: done.map((x) => x.metrics?.loss ?? null) },
                { label: "accuracy", values: done.map((x) => x.metrics?.accuracy ?? null) },
              ]}
            />
            <div class="scroll">
              <table>
                <thead>
                  <tr>
                    <th>Round</th>
                    <th>State</th>
                    <th>Updates</th>
                    <th>Model</th>
                    <th class="wide">Metrics</th>
                  </tr>
                </thead>
                <tbody>
                  {e.round_list.map((x) => (
                    <tr key={x.round_id}>
                      <td>
                        {x.index} <span class="muted">{x.round_id}</span>
                      </td>
                      <td>
                        {x.state}
                        {x.error && <div class="error">{x.error}</div>}
                      </td>
                      <td>
                        {x.updates.length}/{x.k_of_n}
                      </td>
                      <td>
                        v{x.model_version}
                        {x.new_model_version !== undefined ? ` → v${x.new_model_version}` : ""}
                      </td>
                      <td class="wide">
                        {Object.entries(x.metrics ?? {})
                          .map(([k, v]) => `${k} ${v.toFixed(4)}`)
                          .join(", ")}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </Loading>
    </>
  );
}
