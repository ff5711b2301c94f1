import { useEffect, useState } from "preact/hooks";
import { reorderingShown } from "../../src/core/reorder.ts";
import { ago, api } from "../api.ts";
import { Chart } from "../chart.tsx";
import { subscribe } from "../live.ts";
import { Table } from "../table.tsx";
import { Act, Loading, StateText, useApi } from "../ui.tsx";
import { CreateTask } from "./task-create.tsx";
import { PauseResume, type TaskDetail, TaskFields } from "./task-fields.tsx";
import { show } from "./tasks.tsx";

// One task: its fields, why it waits, its output, runs and metrics.

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
      api<{ chunks: { stream: string; data: string }[] }>("GET", `/tasks/${encodeURIComponent(p.id)}/logs`).then(
        (r) => setText(r.chunks.map((c) => c.data).join("")),
        () => {},
      );
      return;
    }
    const es = new EventSource(`/tasks/${encodeURIComponent(p.id)}/logs?follow=true`);
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
      {reorderingShown(text)}
    </pre>
  );
}

/** Past this many characters a result (an FL round's carries a model) is cut, with a way to see it whole. */
const RESULT_SHOWN = 2000;

function Result(p: { id: string; value: unknown }) {
  const [whole, setWhole] = useState(false);
  const text = show(p.value);
  if (text.length <= RESULT_SHOWN || whole) return <>{text}</>;
  return (
    <>
      {text.slice(0, RESULT_SHOWN)}…
      <button type="button" class="results-more" onClick={() => setWhole(true)}>
        Show all ({Math.ceil(text.length / 1024)} KB)
      </button>
    </>
  );
}

interface Sample {
  timestamp?: string;
  metrics?: { cpu_percent?: number; memory_bytes?: number };
}
const SAMPLES = 120;

/**
 * The task's CPU and memory: the samples kept, then those its proplet sends while this page is open (the live
 * stream of this task's metrics events; a task samples when its monitoring profile is on, a daemon by default).
 */
/** How often the proplet samples the task (proplet/monitor.ts `profileFor`), or that it does not. */
function sampling(t: TaskDetail | undefined): string {
  if (!t) return "";
  const m = t.monitoring_profile;
  if (m?.enabled === false) return "not sampled: its monitoring profile is off";
  const given = m?.interval ? (m.interval >= 1e6 ? m.interval / 1e9 : m.interval) : 0;
  return `sampled every ${given || (t.daemon ? 120 : 10)} s while it runs`;
}

function Metrics(p: { id: string; t?: TaskDetail }) {
  const m = useApi<{ metrics: Sample[] }>(`/tasks/${encodeURIComponent(p.id)}/metrics?limit=${SAMPLES}`);
  const [fresh, setFresh] = useState<Sample[]>([]);
  useEffect(() => {
    setFresh([]);
    return subscribe(`types=metrics&task_id=${encodeURIComponent(p.id)}`, ["metrics"], (e) => {
      if (e.kind !== "task") return;
      setFresh((list) => [...list, { ...(e.sample as Sample), timestamp: e.at }].slice(-SAMPLES));
    });
  }, [p.id]);
  const loaded = [...(m.data?.metrics ?? [])].reverse().filter((s) => s.timestamp);
  const newest = loaded.at(-1)?.timestamp ?? "";
  const samples = [...loaded, ...fresh.filter((s) => s.timestamp! > newest)].slice(-SAMPLES);
  return (
    <>
      <p class="muted" data-testid="task-sample-count">
        {samples.length} sample(s){samples.length ? `, the last ${ago(samples.at(-1)!.timestamp)}` : ""}
        {p.t ? `; ${sampling(p.t)}` : ""}
      </p>
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

export function TaskPage(p: { id: string }) {
  const r = useApi<TaskDetail>(`/tasks/${encodeURIComponent(p.id)}`, (e) => e.task_id === p.id);
  const runs = useApi<{ runs: Run[] }>(
    `/tasks/${encodeURIComponent(p.id)}/runs?limit=20`,
    (e) => e.task_id === p.id && e.type === "run",
  );
  const [editing, setEditing] = useState(false);
  // Another task's page (a copy just made, a link followed) starts without the edit form.
  useEffect(() => setEditing(false), [p.id]);
  const t = r.data;
  const act = (what: string) => async () => {
    await api("POST", `/tasks/${encodeURIComponent(p.id)}/${what}`);
    r.reload();
  };
  return (
    <>
      <h1>Task {t?.name ?? p.id}</h1>
      <Loading ready={!!t} error={r.error}>
        {t && (
          <>
            <div class="actions">
              <Act
                label="Start"
                primary
                run={act("start")}
                blocked={t.state === 1 || t.state === 2 ? `the task is already ${t.status}` : undefined}
              />
              <Act
                label="Stop"
                run={act("stop")}
                blocked={t.state === 1 || t.state === 2 ? undefined : `the task is not running (${t.status})`}
              />
              <PauseResume t={t} done={r.reload} />
              <Act
                label="Clone"
                run={async () => {
                  const c = await api<{ id: string }>("POST", `/tasks/${encodeURIComponent(p.id)}/clone`, {});
                  location.hash = `#/tasks/${encodeURIComponent(c.id)}`;
                }}
              />
              <Act label={editing ? "Close the edits" : "Re-run with edits…"} run={async () => setEditing(!editing)} />
              <Act
                label="Delete"
                confirm={`Delete task ${t.name}?`}
                run={async () => {
                  await api("DELETE", `/tasks/${encodeURIComponent(p.id)}`);
                  location.hash = "#/tasks";
                }}
              />
            </div>
            {editing && <CreateTask key={t.id} from={t} open onCreated={() => setEditing(false)} />}
            <dl>
              <dt>State</dt>
              <dd data-testid="task-state">
                <StateText state={t.state} status={t.status} />
              </dd>
              {t.waiting_reason && (
                <>
                  <dt>Waiting</dt>
                  <dd data-testid="task-waiting">{t.waiting_reason}</dd>
                </>
              )}
              <dt>Result</dt>
              <dd data-testid="task-result">
                <Result id={t.id} value={t.results} />
              </dd>
              {t.error && (
                <>
                  <dt>Error</dt>
                  <dd class="error">{reorderingShown(t.error)}</dd>
                </>
              )}
              <dt>Id</dt>
              <dd>{t.id}</dd>
              <dt>Proplet</dt>
              <dd>
                {t.proplet_id ? (
                  <a href={`#/proplets/${encodeURIComponent(t.proplet_id)}`}>{t.proplet_name ?? t.proplet_id}</a>
                ) : (
                  ""
                )}
              </dd>
              <dt>Inputs</dt>
              <dd>{(t.inputs ?? []).join(", ")}</dd>
              <dt>Module</dt>
              <dd>{t.image_url ?? "inline file"}</dd>
              <TaskFields t={t} />
            </dl>
            <h2>Output</h2>
            <Output id={p.id} running={t.state === 2} />
          </>
        )}
      </Loading>
      <h2>Runs</h2>
      <Loading ready={!!runs.data} error={runs.error}>
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
                  {x.error && <div class="error">{reorderingShown(x.error)}</div>}
                </>
              ),
            },
            { head: "Started", cell: (x) => ago(x.started_at) },
            {
              // A run's proplet by its given name where the task knows it (its last proplet), else its id shortened.
              head: "Proplet",
              cell: (x) => (x.proplet_id === t?.proplet_id && t?.proplet_name) || x.proplet_id?.slice(0, 8),
              wide: true,
            },
          ]}
        />
      </Loading>
      <h2>Metrics</h2>
      <Metrics id={p.id} t={t} />
    </>
  );
}
