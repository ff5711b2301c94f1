import { useState } from "preact/hooks";
import { ago, api } from "../api.ts";
import { Table } from "../table.tsx";
import { Act, Alert, formsOpen, Loading, StateText, useApi, useCanWrite } from "../ui.tsx";
import { Dag, type GroupTask } from "./dag.tsx";

// Jobs and workflows: lists, a workflow's DAG with each node in its state's colour (live), and creating either
// from a JSON or YAML file (sent as it is: the manager parses both).

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
            if (p.what === "workflows") await api("POST", `/workflows/${encodeURIComponent(g.workflow_id!)}/start`);
            else await api("POST", `/jobs/${encodeURIComponent(g.job_id!)}/start`);
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
              // Its given name (the id shortened beside it), else its id.
              cell: (w) => (
                <>
                  <a href={`#/workflows/${encodeURIComponent(w.workflow_id!)}`}>{w.name ?? w.workflow_id}</a>
                  {w.name && <span class="muted"> {w.workflow_id!.slice(0, 8)}</span>}
                </>
              ),
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

export function WorkflowPage(p: { id: string }) {
  const r = useApi<Group>(`/workflows/${encodeURIComponent(p.id)}`, (e) => e.type === "task");
  return (
    <>
      <h1>Workflow {r.data?.name ?? p.id}</h1>
      <Loading ready={!!r.data} error={r.error}>
        {r.data && (
          <>
            <p>
              <StateText state={r.data.state} status={r.data.status} /> · {r.data.tasks.length} tasks
              {r.data.name && <span class="muted"> · id {r.data.workflow_id}</span>}
            </p>
            <Dag tasks={r.data.tasks} />
          </>
        )}
      </Loading>
    </>
  );
}

/** One job (`#/jobs/{id}`: it showed the list of all jobs, saying nothing of the one asked for). */
export function JobPage(p: { id: string }) {
  const r = useApi<Group>(`/jobs/${encodeURIComponent(p.id)}`, (e) => e.type === "task");
  const j = r.data;
  return (
    <>
      <h1>Job {j?.name ?? p.id}</h1>
      <Loading ready={!!j} error={r.error}>
        {j && (
          <>
            <p>
              <StateText state={j.state} status={j.status} /> · {j.execution_mode} · {j.tasks.length} tasks
              <span class="muted"> · id {j.job_id}</span>
            </p>
            {j.state <= 2 && (
              <Act
                label={`Stop job ${j.name ?? j.job_id}`}
                run={() => api("POST", `/jobs/${encodeURIComponent(p.id)}/stop`)}
              />
            )}
            <Dag tasks={j.tasks} />
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
                    <a href={`#/tasks/${encodeURIComponent(t.id)}`}>{t.name}</a>{" "}
                    <StateText state={t.state} status={t.status} />
                  </div>
                )),
            },
            {
              head: "Stop",
              // A job that ended (completed, failed, stopped) has nothing to stop.
              cell: (j) =>
                j.state <= 2 ? (
                  <Act
                    label={`Stop job ${j.name ?? j.job_id}`}
                    run={() => api("POST", `/jobs/${encodeURIComponent(j.job_id!)}/stop`)}
                  />
                ) : null,
            },
          ]}
        />
      </Loading>
    </>
  );
}
