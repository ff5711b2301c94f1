import { useState } from "preact/hooks";
import { ago, api } from "../api.ts";
import { Act, Alert, formsOpen, Loading, StateText, Table, useApi, useCanWrite } from "../ui.tsx";
import type { TaskView } from "./tasks.tsx";

// Jobs and workflows: lists, a workflow's DAG with each node in its state's colour (live), and creating either
// from a JSON or YAML file (sent as it is: the manager parses both).

interface GroupTask extends TaskView {
  depends_on?: string[];
  local_id?: string;
}
interface Group {
  workflow_id?: string;
  job_id?: string;
  name?: string;
  execution_mode?: string;
  state: number;
  status: string;
  tasks: GroupTask[];
  created_at: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A node's label: the id its file gave it (a fresh copy keeps it as `local_id`), else its name. */
const label = (t: GroupTask): string => t.local_id ?? (UUID.test(t.id) ? t.name : t.id);

function FromFile(p: { what: "workflows" | "jobs"; onCreated: (g: Group) => void }) {
  const canWrite = useCanWrite();
  const [error, setError] = useState<string>();
  if (!canWrite) return null;
  const what = p.what === "jobs" ? "a job" : "a workflow";
  return (
    <details open={formsOpen()}>
      <summary>Create {what} from a file</summary>
      <form
        class="grid"
        aria-label={`Create ${p.what === "jobs" ? "a job" : "a workflow"} from a file`}
        onSubmit={async (e) => {
          e.preventDefault();
          const form = new FormData(e.currentTarget);
          const file = form.get("spec") as File | null;
          if (!file || file.size === 0) return setError("choose a JSON or YAML file");
          // The file's task ids are kept (as upstream); a fresh copy gets ids of its own, so a file is reusable.
          const fresh = form.get("fresh") ? "?fresh=true" : "";
          setError(undefined);
          const yaml = /\.ya?ml$/i.test(file.name);
          try {
            const g = await api<Group>(
              "POST",
              `/${p.what}${fresh}`,
              await file.text(),
              yaml ? "application/yaml" : "application/json",
            );
            if (p.what === "workflows") await api("POST", `/workflows/${g.workflow_id}/start`);
            else await api("POST", `/jobs/${g.job_id}/start`);
            p.onCreated(g);
          } catch (err) {
            setError(`${file.name}: ${err instanceof Error ? err.message : err}`);
          }
        }}
      >
        <label>
          {p.what === "jobs" ? "Job" : "Workflow"} file (JSON or YAML)
          <input name="spec" type="file" accept=".json,.yaml,.yml" />
        </label>
        <label>
          <input name="fresh" type="checkbox" /> a fresh copy (new task ids; for a file used before)
        </label>
        <button type="submit" class="primary">
          Create and start
        </button>
        <Alert text={error} />
      </form>
    </details>
  );
}

/** What an empty list shows: a minimal file of the format the form takes, in JSON and in YAML. */
const EXAMPLES = {
  jobs: {
    json: `{
  "name": "nightly",
  "execution_mode": "sequential",
  "tasks": [
    { "name": "fetch", "image_url": "registry.local/fetch:1" },
    { "name": "report", "image_url": "registry.local/report:1", "inputs": ["7"] }
  ]
}`,
    yaml: `name: nightly
execution_mode: sequential   # or parallel
tasks:
  - name: fetch
    image_url: registry.local/fetch:1
  - name: report
    image_url: registry.local/report:1
    inputs: ["7"]`,
  },
  workflows: {
    json: `{
  "name": "etl",
  "tasks": [
    { "id": "extract", "name": "extract", "image_url": "registry.local/extract:1" },
    { "id": "load", "name": "load", "image_url": "registry.local/load:1", "depends_on": ["extract"] }
  ]
}`,
    yaml: `name: etl
tasks:
  - id: extract
    name: extract
    image_url: registry.local/extract:1
  - id: load
    name: load
    image_url: registry.local/load:1
    depends_on: [extract]   # run_if: success (default) or failure`,
  },
};

function EmptyExample(p: { what: "workflows" | "jobs" }) {
  const e = EXAMPLES[p.what];
  return (
    <div class="empty" data-testid="empty-example">
      <p>
        No {p.what} yet. {p.what === "jobs" ? "A job" : "A workflow"} is a JSON or YAML file such as this one (a module
        by <code>image_url</code> or as base64 in <code>file</code>):
      </p>
      <div class="examples">
        <figure>
          <figcaption>{p.what}.json</figcaption>
          <pre>{e.json}</pre>
        </figure>
        <figure>
          <figcaption>{p.what}.yaml</figcaption>
          <pre>{e.yaml}</pre>
        </figure>
      </div>
    </div>
  );
}

export function WorkflowsPage() {
  const r = useApi<{ workflows: Group[]; total: number }>("/workflows?limit=100", (e) => e.type === "task");
  return (
    <>
      <h1>Workflows</h1>
      <FromFile
        what="workflows"
        onCreated={(g) => (location.hash = `#/workflows/${encodeURIComponent(g.workflow_id!)}`)}
      />
      <Loading ready={!!r.data} error={r.error}>
        {r.data?.workflows.length === 0 && <EmptyExample what="workflows" />}
        <Table
          rows={r.data?.workflows ?? []}
          rowKey={(w) => w.workflow_id!}
          columns={[
            {
              head: "Workflow",
              cell: (w) => <a href={`#/workflows/${encodeURIComponent(w.workflow_id!)}`}>{w.workflow_id}</a>,
            },
            { head: "State", cell: (w) => <StateText state={w.state} status={w.status} /> },
            { head: "Tasks", cell: (w) => w.tasks.length },
            { head: "Created", cell: (w) => ago(w.created_at), wide: true },
          ]}
        />
      </Loading>
    </>
  );
}

const FILL = ["#9aa0a6", "#9aa0a6", "#4c8df6", "#2e9d50", "#d93025", "#e3a008", "#e3a008"];

/** Columns by depth (longest path from a root), one row per task in its column. */
function Dag(p: { tasks: GroupTask[] }) {
  const byId = new Map(p.tasks.map((t) => [t.id, t]));
  const depth = new Map<string, number>();
  const depthOf = (t: GroupTask, seen = new Set<string>()): number => {
    if (depth.has(t.id)) return depth.get(t.id)!;
    if (seen.has(t.id)) return 0;
    seen.add(t.id);
    const parents = (t.depends_on ?? []).map((d) => byId.get(d)).filter((x): x is GroupTask => !!x);
    const d = parents.length ? 1 + Math.max(...parents.map((x) => depthOf(x, seen))) : 0;
    depth.set(t.id, d);
    return d;
  };
  const columns: GroupTask[][] = [];
  for (const t of p.tasks) {
    const d = depthOf(t);
    columns[d] = [...(columns[d] ?? []), t];
  }
  const W = 150;
  const H = 44;
  const pos = new Map<string, { x: number; y: number }>();
  for (const [c, col] of columns.entries()) {
    for (const [r, t] of (col ?? []).entries()) pos.set(t.id, { x: 10 + c * (W + 40), y: 10 + r * (H + 20) });
  }
  const width = 20 + columns.length * (W + 40);
  const height = 20 + Math.max(1, ...columns.map((c) => c?.length ?? 0)) * (H + 20);
  return (
    // Not an image (role="img" would hide its links): its nodes are links a keyboard reaches (Tab, in the order of
    // the columns), each named by its task and state for a screen reader; the lines are drawing only.
    <svg class="dag" viewBox={`0 0 ${width} ${height}`} width={width} aria-label="Workflow graph">
      {p.tasks.flatMap((t) =>
        (t.depends_on ?? []).map((d) => {
          const a = pos.get(d);
          const b = pos.get(t.id);
          return a && b ? <line key={`${d}-${t.id}`} x1={a.x + W} y1={a.y + H / 2} x2={b.x} y2={b.y + H / 2} /> : null;
        }),
      )}
      {columns.flat().map((t) => {
        const at = pos.get(t.id)!;
        return (
          <g key={t.id} data-task={label(t)} data-state={t.status}>
            <a href={`#/tasks/${t.id}`}>
              {/* Its name for a screen reader, and the whole label where the node cuts it. */}
              <title>{`${label(t)} ${t.status}`}</title>
              <rect x={at.x} y={at.y} width={W} height={H} rx={6} fill={FILL[t.state] ?? "#9aa0a6"} opacity={0.35} />
              <text x={at.x + 8} y={at.y + 18}>
                {label(t).slice(0, 20)}
              </text>
              <text x={at.x + 8} y={at.y + 35}>
                {t.status}
              </text>
            </a>
          </g>
        );
      })}
    </svg>
  );
}

export function WorkflowPage(p: { id: string }) {
  const r = useApi<Group>(`/workflows/${encodeURIComponent(p.id)}`, (e) => e.type === "task");
  return (
    <>
      <h1>Workflow {p.id}</h1>
      <Loading ready={!!r.data} error={r.error}>
        {r.data && (
          <>
            <p>
              <StateText state={r.data.state} status={r.data.status} /> · {r.data.tasks.length} tasks
            </p>
            <div class="scroll">
              <Dag tasks={r.data.tasks} />
            </div>
          </>
        )}
      </Loading>
    </>
  );
}

export function JobsPage() {
  const r = useApi<{ jobs: Group[]; total: number }>("/jobs?limit=100", (e) => e.type === "task");
  return (
    <>
      <h1>Jobs</h1>
      <FromFile what="jobs" onCreated={r.reload} />
      <Loading ready={!!r.data} error={r.error}>
        {r.data?.jobs.length === 0 && <EmptyExample what="jobs" />}
        <Table
          rows={r.data?.jobs ?? []}
          rowKey={(j) => j.job_id!}
          columns={[
            {
              head: "Job",
              cell: (j) => (
                <>
                  {j.name ?? j.job_id} <span class="muted">{j.job_id?.slice(0, 8)}</span>
                </>
              ),
            },
            { head: "Mode", cell: (j) => j.execution_mode },
            { head: "State", cell: (j) => <StateText state={j.state} status={j.status} /> },
            {
              head: "Tasks",
              cell: (j) =>
                j.tasks.map((t) => (
                  <div key={t.id}>
                    <a href={`#/tasks/${t.id}`}>
                      {/* Its name for a screen reader, and the whole label where the node cuts it. */}
                      <title>{`${label(t)} ${t.status}`}</title>
                      {t.name}
                    </a>{" "}
                    <StateText state={t.state} status={t.status} />
                  </div>
                )),
            },
            {
              head: "Stop",
              // A job that ended (completed, failed, stopped) has nothing to stop.
              cell: (j) =>
                j.state <= 2 ? (
                  <Act label={`Stop job ${j.name ?? j.job_id}`} run={() => api("POST", `/jobs/${j.job_id}/stop`)} />
                ) : null,
            },
          ]}
        />
      </Loading>
    </>
  );
}
