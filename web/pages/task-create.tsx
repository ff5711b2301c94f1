import { useState } from "preact/hooks";
import { api, base64 } from "../api.ts";
import { EMPTY, type Exports, entryOf, exportsOf, fromBase64, type Prefill, prefill, taskBody } from "../task-body.ts";
import { Alert, formsOpen, useApi, useCanWrite } from "../ui.tsx";
import type { TaskDetail } from "./task-fields.tsx";
import type { TaskView } from "./tasks.tsx";

// The form that creates a task (and, by default, starts it); given a task (`from`), the same form prefilled makes
// a copy with edits (`POST /tasks/{id}/clone`: the module comes along unless another is chosen).

interface Example {
  name: string;
  about: string;
  file: string;
}

/** What a module exports, and which of them a run will call: the name-is-the-export rule said, not discovered. */
function ExportHint(p: { exports?: Exports; name: string; invoke: string }) {
  const x = p.exports;
  if (!x) return null;
  const e = entryOf(x, p.name, p.invoke);
  return (
    <p class="hint" data-testid="export-hint" role="status">
      {x.map && <>Exports: {x.functions.map((f) => f.signature).join(", ") || "no functions"}. </>}
      {e.ok ? e.text : <strong class="error">{e.text}</strong>}
    </p>
  );
}

export function CreateTask(p: { onCreated: () => void; from?: TaskDetail; open?: boolean }) {
  const canWrite = useCanWrite();
  const examples = useApi<{ examples: Example[] }>(canWrite ? "/examples" : undefined);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [exports, setExports] = useState<Exports>();
  const v: Prefill = p.from ? prefill(p.from) : EMPTY;
  const [name, setName] = useState(v.name);
  const [invoke, setInvoke] = useState(v.invoke);
  // A viewer's console is read-only: no form to fill that could not be sent.
  if (!canWrite) return null;
  const copy = p.from;
  const title = copy ? `Re-run ${copy.name} with edits` : "Create a task";
  const listId = copy ? "exports-copy" : "exports-new";
  return (
    <details open={p.open ?? formsOpen()}>
      <summary>{title}</summary>
      <form
        class="grid"
        aria-label={title}
        onSubmit={async (e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          const file = f.get("file") as File | null;
          const image = String(f.get("image_url") ?? "").trim();
          const chosen = examples.data?.examples.find((x) => x.name === f.get("example"));
          setBusy(true);
          setError(undefined);
          try {
            const body = taskBody(f, !!copy, copy?.cli_args ?? []);
            if (file && file.size > 0) body.file = await base64(file);
            else if (image) body.image_url = image;
            else if (chosen) body.file = chosen.file;
            else if (!copy) throw new Error("give a .wasm file, an image reference or an example");
            const t = copy
              ? await api<TaskView>("POST", `/tasks/${encodeURIComponent(copy.id)}/clone`, body)
              : await api<TaskView>("POST", "/tasks", body);
            if (f.get("start")) await api("POST", `/tasks/${encodeURIComponent(t.id)}/start`);
            if (!copy) (e.target as HTMLFormElement).reset();
            p.onCreated();
            location.hash = `#/tasks/${encodeURIComponent(t.id)}`;
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          Module (.wasm){copy ? ": keep the original's if none is chosen" : ""}
          <input
            name="file"
            type="file"
            accept=".wasm,application/wasm"
            onChange={async (e) => {
              const f = e.currentTarget.files?.[0];
              setExports(f ? exportsOf(new Uint8Array(await f.arrayBuffer())) : undefined);
            }}
          />
        </label>
        <label>
          or image reference
          <input name="image_url" placeholder={copy?.image_url ?? "registry:5000/app:1"} />
        </label>
        <label>
          or an example
          <select
            name="example"
            onChange={(e) => {
              const x = examples.data?.examples.find((y) => y.name === e.currentTarget.value);
              setExports(x ? exportsOf(fromBase64(x.file)) : undefined);
            }}
          >
            <option value="">none</option>
            {examples.data?.examples.map((x) => (
              <option key={x.name} value={x.name} title={x.about}>
                {x.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Name
          <input name="name" required placeholder="add" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Function to call (blank: same as the task)
          <input
            name="invoke"
            list={listId}
            placeholder={exports?.functions[0]?.name ?? "add"}
            value={invoke}
            onInput={(e) => setInvoke(e.currentTarget.value)}
          />
          <datalist id={listId}>
            {exports?.functions.map((x) => (
              <option key={x.name} value={x.name}>
                {x.signature}
              </option>
            ))}
          </datalist>
        </label>
        <ExportHint exports={exports} name={name.trim()} invoke={invoke.trim()} />
        <label>
          Inputs (comma-separated)
          <input name="inputs" placeholder="10,20" defaultValue={v.inputs} />
        </label>
        <label>
          Env (KEY=VALUE per line)
          <textarea name="env" defaultValue={v.env} />
        </label>
        <label>
          Requirements (label=value per line; runtime=, arch=, tee=, min_memory_mb= too)
          <textarea name="requirements" placeholder="gpu=true" defaultValue={v.requirements} />
        </label>
        <label>
          Timeout (s)
          <input name="timeout" type="number" min="1" max="604800" placeholder="none" defaultValue={v.timeout} />
        </label>
        <label>
          Retries on failure (0–100)
          <input name="retries" type="number" min="0" max="100" placeholder="0" defaultValue={v.retries} />
        </label>
        <label>
          Schedule (cron)
          <input name="schedule" placeholder="*/5 * * * *" defaultValue={v.schedule} />
        </label>
        <label>
          Time zone (of the schedule)
          <input name="timezone" placeholder="UTC" defaultValue={v.timezone} />
        </label>
        <label>
          Missed runs (serve was down)
          {/* `selected` on the option: a select has no default value property for Preact to set. */}
          <select name="misfire">
            <option value="skip">skip them</option>
            <option value="run_once" selected={v.misfire === "run_once"}>
              run once on return
            </option>
          </select>
        </label>
        <label>
          Priority (0–100)
          <input name="priority" type="number" min="0" max="100" placeholder="50" defaultValue={v.priority} />
        </label>
        <label>
          Metadata (JSON object)
          <textarea name="metadata" placeholder='{"team": "edge"}' defaultValue={v.metadata} />
        </label>
        <label>
          <span>
            <input name="daemon" type="checkbox" defaultChecked={v.daemon} /> Daemon
          </span>
          <span>
            <input name="start" type="checkbox" defaultChecked /> Start now
          </span>
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {copy ? "Create the copy" : "Create task"}
        </button>
      </form>
      <Alert text={error} />
    </details>
  );
}
