import { useState } from "preact/hooks";
import { api, base64 } from "../api.ts";
import { Alert, useApi, useSession, VIEWER_REASON } from "../ui.tsx";

// Starting a federated-learning experiment from the console: what `propeller fl configure` sends, as a form
// (`POST /fl/experiments`); the server checks every field and says which one is wrong.

const STRATEGIES = ["fedavg", "fedprox", "median", "trimmed_mean"];

interface Proplet {
  id: string;
  name: string;
  alive: boolean;
}

export function StartExperiment() {
  const s = useSession();
  const viewer = s.role !== "admin";
  const proplets = useApi<{ proplets: Proplet[] }>("/proplets?limit=1000");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  if (viewer) return null;
  return (
    <details>
      <summary>Start an experiment</summary>
      <form
        class="grid"
        aria-label="Start an experiment"
        onSubmit={async (e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          const file = f.get("task_file") as File | null;
          const image = String(f.get("task_wasm_image") ?? "").trim();
          const body: Record<string, unknown> = {
            experiment_id: String(f.get("experiment_id") ?? "").trim(),
            participants: f.getAll("participants").map(String),
            rounds: Number(f.get("rounds") || 1),
            strategy: String(f.get("strategy")),
            timeout_s: Number(f.get("timeout_s") || 60),
          };
          const k = String(f.get("k_of_n") ?? "").trim();
          if (k) body.k_of_n = Number(k);
          const model = String(f.get("model_ref") ?? "").trim();
          if (model) body.model_ref = model;
          setBusy(true);
          setError(undefined);
          try {
            if (file && file.size > 0) body.task_file = await base64(file);
            else if (image) body.task_wasm_image = image;
            else throw new Error("give the round's module: a .wasm file or an image reference");
            await api("POST", "/fl/experiments", body);
            location.hash = `#/fl/${encodeURIComponent(String(body.experiment_id))}`;
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          Experiment id
          <input name="experiment_id" required pattern="[A-Za-z0-9_.:\-]{1,128}" placeholder="mnist-1" />
        </label>
        <fieldset>
          <legend>Participants</legend>
          {(proplets.data?.proplets ?? []).map((p) => (
            <label key={p.id} class="check">
              <input type="checkbox" name="participants" value={p.id} />
              {p.name} {!p.alive && <span class="muted">(down)</span>}
            </label>
          ))}
          {proplets.data?.proplets.length === 0 && <p class="muted">No proplet has registered yet.</p>}
        </fieldset>
        <label>
          Rounds
          <input name="rounds" type="number" min="1" max="1000" defaultValue="3" />
        </label>
        <label>
          Strategy
          <select name="strategy">
            {STRATEGIES.map((x) => (
              <option key={x}>{x}</option>
            ))}
          </select>
        </label>
        <label>
          Updates that close a round (K of N; empty: every participant)
          <input name="k_of_n" type="number" min="1" />
        </label>
        <label>
          Round timeout (s)
          <input name="timeout_s" type="number" min="1" max="86400" defaultValue="60" />
        </label>
        <label>
          Round module (.wasm)
          <input name="task_file" type="file" accept=".wasm,application/wasm" />
        </label>
        <label>
          or its image reference
          <input name="task_wasm_image" placeholder="registry/fl-client:1" />
        </label>
        <label>
          Initial model (model_ref; empty: the default)
          <input name="model_ref" />
        </label>
        <div>
          <button type="submit" class="primary" disabled={busy} title={viewer ? VIEWER_REASON : undefined}>
            Start experiment
          </button>
        </div>
      </form>
      <Alert text={error} />
    </details>
  );
}
