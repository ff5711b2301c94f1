import { useEffect, useState } from "preact/hooks";
import { ago, api, base64, STATES } from "../api.ts";
import { Act, Alert, Chart, Loading, StateText, Table, useApi, useSession, VIEWER_REASON, ViewerNote } from "../ui.tsx";

export interface TaskView {
  id: string;
  name: string;
  state: number;
  status: string;
  proplet_id?: string;
  /** The name of the proplet it runs (or ran) on: its identity's, for a provisioned one. */
  proplet_name?: string;
  results?: unknown;
  error?: string;
  inputs?: string[];
  env?: Record<string, string>;
  schedule?: string;
  priority?: number;
  image_url?: string;
  created_at: string;
  updated_at?: string;
  daemon?: boolean;
  metadata?: Record<string, unknown>;
}

const show = (v: unknown) => (v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));
const PAGE = 25;

export function TasksPage() {
  const [offset, setOffset] = useState(0);
  const [state, setState] = useState("");
  const [meta, setMeta] = useState("");
  const [filter, setFilter] = useState<string>();
  const q = `/tasks?offset=${offset}&limit=${PAGE}${filter ? `&metadata=${encodeURIComponent(filter)}` : ""}`;
  const r = useApi<{ tasks: TaskView[]; total: number }>(q, (e) => e.type === "task");
  const [filterError, setFilterError] = useState<string>();
  const rows = (r.data?.tasks ?? []).filter((t) => state === "" || t.state === Number(state));
  return (
    <>
      <h1>Tasks</h1>
      <CreateTask onCreated={r.reload} />
      <h2>All tasks</h2>
      <form
        class="grid"
        onSubmit={(e) => {
          e.preventDefault();
          const pairs = meta
            .split(",")
            .map((p) => p.trim())
            .filter(Boolean);
          const obj: Record<string, string> = {};
          for (const p of pairs) {
            const [k, ...v] = p.split("=");
            if (!k || v.length === 0) return setFilterError(`metadata filter: "${p}" is not KEY=VALUE`);
            obj[k] = v.join("=");
          }
          setFilterError(undefined);
          setOffset(0);
          setFilter(pairs.length ? JSON.stringify(obj) : undefined);
        }}
      >
        <label>
          State (this page)
          <select value={state} onChange={(e) => setState(e.currentTarget.value)}>
            <option value="">any</option>
            {STATES.map((s, i) => (
              <option key={s} value={String(i)}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Metadata filter (KEY=VALUE, …)
          <input value={meta} onInput={(e) => setMeta(e.currentTarget.value)} placeholder="team=edge" />
        </label>
        <button type="submit">Filter</button>
      </form>
      {filterError && <p class="error">{filterError}</p>}
      <Loading ready={!!r.data} error={r.error}>
        <Table
          rows={rows}
          rowKey={(t) => t.id}
          columns={[
            {
              head: "Name",
              cell: (t) => (
                <>
                  <a href={`#/tasks/${t.id}`}>{t.name}</a> <span class="muted">{t.id.slice(0, 8)}</span>
                </>
              ),
            },
            {
              head: "State",
              cell: (t) => (
                <>
                  <StateText state={t.state} status={t.status} />
                  {t.error && <div class="error">{t.error}</div>}
                </>
              ),
            },
            { head: "Result", cell: (t) => show(t.results).slice(0, 80), wide: true },
            { head: "Created", cell: (t) => ago(t.created_at), wide: true },
          ]}
        />
        <div class="actions">
          <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
            Newer
          </button>
          <span class="muted">
            {r.data && r.data.total > 0
              ? `${offset + 1}–${Math.min(offset + PAGE, r.data.total)} of ${r.data.total}`
              : "no tasks"}
          </span>
          <button
            type="button"
            disabled={!r.data || offset + PAGE >= r.data.total}
            onClick={() => setOffset(offset + PAGE)}
          >
            Older
          </button>
        </div>
      </Loading>
    </>
  );
}

interface Example {
  name: string;
  about: string;
  file: string;
}

function CreateTask(p: { onCreated: () => void }) {
  const s = useSession();
  const viewer = s.role !== "admin";
  const examples = useApi<{ examples: Example[] }>("/examples");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <details open>
      <summary>Create a task</summary>
      <form
        class="grid"
        aria-label="Create a task"
        onSubmit={async (e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          const file = f.get("file") as File | null;
          const image = String(f.get("image_url") ?? "").trim();
          const chosen = examples.data?.examples.find((x) => x.name === f.get("example"));
          const body: Record<string, unknown> = { name: String(f.get("name") ?? "").trim() };
          const inputs = String(f.get("inputs") ?? "").trim();
          if (inputs) body.inputs = inputs.split(",").map((x) => x.trim());
          const env: Record<string, string> = {};
          for (const line of String(f.get("env") ?? "").split("\n")) {
            const t = line.trim();
            if (!t) continue;
            const i = t.indexOf("=");
            if (i < 1) return setError(`env: "${t}" is not KEY=VALUE`);
            env[t.slice(0, i)] = t.slice(i + 1);
          }
          if (Object.keys(env).length) body.env = env;
          const schedule = String(f.get("schedule") ?? "").trim();
          if (schedule) body.schedule = schedule;
          const priority = String(f.get("priority") ?? "").trim();
          if (priority) body.priority = Number(priority);
          if (f.get("daemon")) body.daemon = true;
          setBusy(true);
          setError(undefined);
          try {
            if (file && file.size > 0) body.file = await base64(file);
            else if (image) body.image_url = image;
            else if (chosen) body.file = chosen.file;
            else throw new Error("give a .wasm file, an image reference or an example");
            const t = await api<TaskView>("POST", "/tasks", body);
            if (f.get("start")) await api("POST", `/tasks/${t.id}/start`);
            (e.target as HTMLFormElement).reset();
            p.onCreated();
            location.hash = `#/tasks/${t.id}`;
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          Name
          <input name="name" required placeholder="add" />
        </label>
        <label>
          Module (.wasm)
          <input name="file" type="file" accept=".wasm,application/wasm" />
        </label>
        <label>
          or image reference
          <input name="image_url" placeholder="registry:5000/app:1" />
        </label>
        <label>
          or an example
          <select name="example">
            <option value="">none</option>
            {examples.data?.examples.map((x) => (
              <option key={x.name} value={x.name} title={x.about}>
                {x.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Inputs (comma-separated)
          <input name="inputs" placeholder="10,20" />
        </label>
        <label>
          Env (KEY=VALUE per line)
          <textarea name="env" />
        </label>
        <label>
          Schedule (cron)
          <input name="schedule" placeholder="*/5 * * * *" />
        </label>
        <label>
          Priority (0–100)
          <input name="priority" type="number" min="0" max="100" placeholder="50" />
        </label>
        <label>
          <span>
            <input name="daemon" type="checkbox" /> Daemon
          </span>
          <span>
            <input name="start" type="checkbox" defaultChecked /> Start now
          </span>
        </label>
        <button type="submit" class="primary" disabled={busy || viewer} title={viewer ? VIEWER_REASON : undefined}>
          Create task
        </button>
      </form>
      <Alert text={error} />
      <ViewerNote />
    </details>
  );
}

interface Run {
  run_id: string;
  attempt: number;
  state: number;
  status: string;
  proplet_id?: string;
  started_at: string;
  finished_at?: string;
  error?: string;
}

function Output(p: { id: string; running: boolean }) {
  const [text, setText] = useState("");
  useEffect(() => {
    setText("");
    if (!p.running) {
      api<{ chunks: { stream: string; data: string }[] }>("GET", `/tasks/${p.id}/logs`).then(
        (r) => setText(r.chunks.map((c) => c.data).join("")),
        () => {},
      );
      return;
    }
    const es = new EventSource(`/tasks/${p.id}/logs?follow=true`);
    es.addEventListener("output", (m) => {
      const c = JSON.parse((m as MessageEvent).data) as { data: string };
      setText((t) => (t + c.data).slice(-100_000));
    });
    es.addEventListener("end", () => es.close());
    return () => es.close();
  }, [p.id, p.running]);
  if (!text) return <p class="muted">{p.running ? "No output yet." : "No output kept."}</p>;
  return (
    <pre role="log" aria-label="Output">
      {text}
    </pre>
  );
}

export function TaskPage(p: { id: string }) {
  const r = useApi<TaskView>(`/tasks/${p.id}`, (e) => e.task_id === p.id);
  const runs = useApi<{ runs: Run[] }>(`/tasks/${p.id}/runs?limit=20`, (e) => e.task_id === p.id && e.type === "run");
  const m = useApi<{ metrics: { timestamp?: string; metrics?: { cpu_percent?: number; memory_bytes?: number } }[] }>(
    `/tasks/${p.id}/metrics?limit=120`,
    (e) => e.task_id === p.id,
  );
  const t = r.data;
  const samples = [...(m.data?.metrics ?? [])].reverse().filter((s) => s.timestamp);
  const act = (what: string) => async () => {
    await api("POST", `/tasks/${p.id}/${what}`);
    r.reload();
  };
  return (
    <>
      <h1>Task {t?.name ?? p.id}</h1>
      <Loading ready={!!t} error={r.error}>
        {t && (
          <>
            <div class="actions">
              <Act label="Start" primary run={act("start")} />
              <Act label="Stop" run={act("stop")} />
              <Act
                label="Delete"
                confirm={`Delete task ${t.name}?`}
                run={async () => {
                  await api("DELETE", `/tasks/${p.id}`);
                  location.hash = "#/tasks";
                }}
              />
            </div>
            <dl>
              <dt>State</dt>
              <dd data-testid="task-state">
                <StateText state={t.state} status={t.status} />
              </dd>
              <dt>Result</dt>
              <dd data-testid="task-result">{show(t.results)}</dd>
              {t.error && (
                <>
                  <dt>Error</dt>
                  <dd class="error">{t.error}</dd>
                </>
              )}
              <dt>Id</dt>
              <dd>{t.id}</dd>
              <dt>Proplet</dt>
              <dd>{t.proplet_id ? <a href={`#/proplets/${t.proplet_id}`}>{t.proplet_name ?? t.proplet_id}</a> : ""}</dd>
              <dt>Inputs</dt>
              <dd>{(t.inputs ?? []).join(", ")}</dd>
              <dt>Module</dt>
              <dd>{t.image_url ?? "inline file"}</dd>
              {t.schedule && (
                <>
                  <dt>Schedule</dt>
                  <dd>{t.schedule}</dd>
                </>
              )}
              <dt>Priority</dt>
              <dd>{t.priority ?? 50}</dd>
              <dt>Env</dt>
              <dd>{show(t.env)}</dd>
              <dt>Metadata</dt>
              <dd>{show(t.metadata)}</dd>
            </dl>
            <h2>Output</h2>
            <Output id={p.id} running={t.state === 2} />
          </>
        )}
      </Loading>
      <h2>Runs</h2>
      <Table
        rows={runs.data?.runs ?? []}
        rowKey={(x) => x.run_id}
        columns={[
          { head: "Attempt", cell: (x) => x.attempt },
          {
            head: "State",
            cell: (x) => (
              <>
                <StateText state={x.state} status={x.status} />
                {x.error && <div class="error">{x.error}</div>}
              </>
            ),
          },
          { head: "Started", cell: (x) => ago(x.started_at) },
          { head: "Proplet", cell: (x) => x.proplet_id?.slice(0, 8), wide: true },
        ]}
      />
      <h2>Metrics</h2>
      <Chart
        title="CPU % and memory (MiB)"
        x={samples.map((s) => Date.parse(s.timestamp!) / 1000)}
        series={[
          { label: "cpu %", values: samples.map((s) => s.metrics?.cpu_percent ?? null) },
          { label: "memory MiB", values: samples.map((s) => (s.metrics?.memory_bytes ?? 0) / 1048576) },
        ]}
      />
    </>
  );
}
