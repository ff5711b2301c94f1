import { reorderingShown } from "../../src/core/reorder.ts";
import { ago, api } from "../api.ts";
import { Table } from "../table.tsx";
import { Act, Loading, useApi } from "../ui.tsx";
import { RoundChart } from "./fl-charts.tsx";
import { StartExperiment } from "./fl-create.tsx";

/** A state in words, with its error under it. */
function StateLine(p: { state: string; error?: string }) {
  return (
    <>
      {p.state}
      {p.error && <div class="error">{reorderingShown(p.error)}</div>}
    </>
  );
}

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
  updates: { proplet_id: string; num_samples: number; via: string; metrics: Record<string, unknown> }[];
  metrics?: Record<string, number>;
  started_at: string;
  ended_at?: string;
  error?: string;
}
interface Experiment {
  experiment_id: string;
  state: string;
  rounds: number;
  strategy: string;
  participants: string[];
  /** The participants as their proplets are named, in the same order. */
  participant_names?: string[];
  error?: string;
  created_at: string;
  round_list: Round[];
}

/** How long a round took, or has run so far. */
function duration(r: Round): string {
  const ms = (r.ended_at ? Date.parse(r.ended_at) : Date.now()) - Date.parse(r.started_at);
  if (!Number.isFinite(ms)) return "";
  const s = ms / 1000;
  const text = s < 10 ? `${s.toFixed(1)} s` : s < 120 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
  return r.ended_at ? text : `${text} so far`;
}

export function FlPage() {
  const r = useApi<{ experiments: Experiment[] }>("/fl/experiments", (e) => e.type === "fl");
  return (
    <>
      <h1>Federated learning</h1>
      <p class="muted">
        Start an experiment here or with <code>propeller fl configure</code> (see <code>--help</code>); it shows up here
        live.
      </p>
      <StartExperiment />
      <Loading ready={!!r.data} error={r.error}>
        {r.data?.experiments.length === 0 ? (
          <p class="muted">No experiments yet.</p>
        ) : (
          <Table
            rows={r.data?.experiments ?? []}
            rowKey={(e) => e.experiment_id}
            columns={[
              {
                head: "Experiment",
                cell: (e) => <a href={`#/fl/${encodeURIComponent(e.experiment_id)}`}>{e.experiment_id}</a>,
              },
              { head: "State", cell: (e) => <StateLine state={e.state} error={e.error} /> },
              {
                head: "Rounds",
                cell: (e) => `${e.round_list.filter((x) => x.state === "completed").length}/${e.rounds}`,
              },
              {
                head: "Participants",
                cell: (e) => (e.participant_names ?? e.participants.map((x) => x.slice(0, 8))).join(", "),
                wide: true,
              },
              { head: "Strategy", cell: (e) => e.strategy, wide: true },
              { head: "Started", cell: (e) => ago(e.created_at), wide: true },
            ]}
          />
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
  const nameOf = (id: string) => e?.participant_names?.[e.participants.indexOf(id)] ?? id.slice(0, 8);
  return (
    <>
      <h1>Experiment {p.id}</h1>
      <Loading ready={!!e} error={r.error}>
        {e && (
          <>
            <p>
              {e.state} · {e.strategy} · participants{" "}
              {(e.participant_names ?? e.participants.map((x) => x.slice(0, 8))).join(", ")}
            </p>
            {e.error && <p class="error">{reorderingShown(e.error)}</p>}
            {e.state === "running" && (
              <div class="actions">
                <Act label="Stop experiment" run={() => api("POST", `${path}/stop`).then(r.reload)} />
              </div>
            )}
            <div class="charts">
              <RoundChart
                title="Loss"
                rounds={done.map((x) => x.index)}
                values={done.map((x) => x.metrics?.loss ?? null)}
                color="#b00020"
              />
              <RoundChart
                title="Accuracy"
                rounds={done.map((x) => x.index)}
                values={done.map((x) => x.metrics?.accuracy ?? null)}
                color="#176f2c"
              />
            </div>
            <Table
              rows={e.round_list}
              rowKey={(x) => x.round_id}
              columns={[
                {
                  head: "Round",
                  cell: (x) => (
                    <>
                      {x.index} <span class="muted">{x.round_id}</span>
                    </>
                  ),
                },
                { head: "State", cell: (x) => <StateLine state={x.state} error={x.error} /> },
                { head: "Updates", cell: (x) => `${x.updates.length}/${x.k_of_n}` },
                { head: "Duration", cell: (x) => duration(x) },
                {
                  // A round's tasks live here, under their experiment (the task list leaves them out).
                  head: "Tasks",
                  cell: (x) =>
                    Object.entries(x.tasks).map(([proplet, task], i) => (
                      <span key={task}>
                        {i > 0 && ", "}
                        <a href={`#/tasks/${encodeURIComponent(task)}`}>{nameOf(proplet)}</a>
                      </span>
                    )),
                  wide: true,
                },
                {
                  head: "Model",
                  cell: (x) => (
                    <>
                      v{x.model_version}
                      {x.new_model_version !== undefined && (
                        <>
                          {" → "}
                          <a
                            href={`/fl/models/${x.new_model_version}`}
                            download={`model-v${x.new_model_version}.json`}
                            aria-label={`Download model v${x.new_model_version}`}
                          >
                            v{x.new_model_version}
                          </a>
                        </>
                      )}
                    </>
                  ),
                },
                {
                  head: "Metrics",
                  cell: (x) =>
                    Object.entries(x.metrics ?? {})
                      .map(([k, v]) => `${k} ${v.toFixed(4)}`)
                      .join(", "),
                  wide: true,
                },
              ]}
            />
            <h2>Updates per participant</h2>
            <Table
              rows={e.round_list}
              rowKey={(x) => x.round_id}
              columns={[
                { head: "Round", cell: (x) => x.index },
                ...e.participants.map((id) => ({
                  head: nameOf(id),
                  cell: (x: Round) => {
                    const u = x.updates.find((y) => y.proplet_id === id);
                    if (!u) return <span class="muted">{x.tasks[id] ? "–" : "not asked"}</span>;
                    const m = Object.entries(u.metrics ?? {})
                      .filter(([, v]) => typeof v === "number")
                      .map(([k, v]) => `${k} ${(v as number).toFixed(3)}`);
                    return `${u.num_samples} samples${m.length ? ` · ${m.join(", ")}` : ""}`;
                  },
                })),
              ]}
            />
          </>
        )}
      </Loading>
    </>
  );
}
