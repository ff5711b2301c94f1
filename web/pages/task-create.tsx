import { useState } from "preact/hooks";
import { api, base64 } from "../api.ts";
import { Alert, formsOpen, useApi, useCanWrite } from "../ui.tsx";
import type { TaskView } from "./tasks.tsx";

// The form that creates a task (and, by default, starts it).

interface Example {
  name: string;
  about: string;
  file: string;
}

export function CreateTask(p: { onCreated: () => void }) {
  const canWrite = useCanWrite();
  const examples = useApi<{ examples: Example[] }>(canWrite ? "/examples" : undefined);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  // A viewer's console is read-only: no form to fill that could not be sent.
  if (!canWrite) return null;
  return (
    <details open={formsOpen()}>
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
        <button type="submit" class="primary" disabled={busy}>
          Create task
        </button>
      </form>
      <Alert text={error} />
    </details>
  );
}
