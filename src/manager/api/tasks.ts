import type { Hono } from "hono";
import { invalid } from "../../core/errors.ts";
import { MetadataFilter } from "../../core/metadata.ts";
import { InvokeRequest, TaskCreate, TaskUpdate, taskTypo } from "../../core/task.ts";
import { cloneTypo, TaskClone } from "../../core/task-clone.ts";
import { TaskListQuery } from "../../core/task-query.ts";
import { hasWasmMagic } from "../../core/wasm-binary.ts";
import type { Invocations } from "../invoke.ts";
import type { Tasks } from "../tasks.ts";
import type { Telemetry } from "../telemetry.ts";
import { jsonAnswer } from "./compress.ts";
import { checked, jsonBody, paged, query } from "./http.ts";

/** `/tasks…`, with upstream's paths and keys. */
export function taskRoutes(app: Hono, tasks: Tasks, telemetry: Telemetry, invocations: Invocations): void {
  // The answers of a task's way (create, start, a task) are sized as they are built (compress.ts jsonAnswer).
  app.post("/tasks", async (c) => {
    const task = await tasks.create(await jsonBody(c, TaskCreate, { typos: taskTypo }));
    c.header("Location", `/tasks/${task.id}`);
    return jsonAnswer(c, task, 201);
  });
  // A copy with some fields changed; the module travels with it (its view shows it redacted).
  app.post("/tasks/:id/clone", async (c) => {
    const id = tasks.resolveId(c.req.param("id"));
    const task = await tasks.clone(id, await jsonBody(c, TaskClone, { typos: cloneTypo }));
    c.header("Location", `/tasks/${task.id}`);
    return c.json(task, 201);
  });
  app.get("/tasks", (c) => {
    // Upstream refuses a repeated filter rather than picking one.
    if ((c.req.queries("metadata")?.length ?? 0) > 1) throw invalid("metadata: give one JSON object, not several");
    const metadata = query(c, "metadata", MetadataFilter.optional());
    const find = checked(c.req.queries(), TaskListQuery);
    return paged(c, "tasks", (o, l) => tasks.list(o, l, find, metadata));
  });
  app.get("/tasks/:id", (c) => jsonAnswer(c, tasks.get(tasks.resolveId(c.req.param("id")))));
  app.put("/tasks/:id", async (c) =>
    c.json(await tasks.update(tasks.resolveId(c.req.param("id")), await jsonBody(c, TaskUpdate, { typos: taskTypo }))),
  );
  app.delete("/tasks/:id", async (c) => {
    await tasks.delete(tasks.resolveId(c.req.param("id")));
    return c.body(null, 204);
  });
  app.post("/tasks/:id/start", async (c) => jsonAnswer(c, await tasks.start(tasks.resolveId(c.req.param("id")))));
  app.post("/tasks/:id/pause", async (c) => c.json(await tasks.pause(tasks.resolveId(c.req.param("id")), true)));
  app.post("/tasks/:id/resume", async (c) => c.json(await tasks.pause(tasks.resolveId(c.req.param("id")), false)));
  app.post("/tasks/:id/stop", async (c) => c.json(await tasks.stop(tasks.resolveId(c.req.param("id")))));
  // Upstream allows an empty body without a content type.
  app.post("/tasks/:id/invoke", async (c) => {
    const id = tasks.resolveId(c.req.param("id"));
    const empty = (c.req.header("content-length") ?? "0") === "0" && !c.req.header("content-type");
    return c.json(await invocations.invoke(id, empty ? {} : await jsonBody(c, InvokeRequest)));
  });
  app.get("/tasks/:id/results", (c) => c.json(tasks.results(tasks.resolveId(c.req.param("id")))));
  app.get("/tasks/:id/metrics", (c) =>
    paged(c, "metrics", (o, l) => telemetry.taskMetrics(tasks.resolveId(c.req.param("id")), o, l)),
  );
  app.get("/tasks/:id/runs", (c) => paged(c, "runs", (o, l) => tasks.runs(tasks.resolveId(c.req.param("id")), o, l)));
  app.put("/tasks/:id/upload", async (c) => {
    const id = tasks.resolveId(c.req.param("id")); // 404 before reading a large body
    let form: FormData;
    try {
      form = await c.req.formData();
    } catch {
      throw invalid("expected a multipart/form-data body with a `file` field");
    }
    const file = form.get("file");
    if (!(file instanceof File)) throw invalid("file: is required (multipart field `file` with a .wasm file)");
    if (!file.name.endsWith(".wasm")) {
      throw invalid(`file: invalid file extension in ${JSON.stringify(file.name)}, expected .wasm`);
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (!hasWasmMagic(bytes)) throw invalid("file: invalid WASM file: missing magic bytes");
    // Under a trust policy an upload may carry its detached signature (docs/ARCHITECTURE.md, "Trusted code").
    const sig = form.get("signature");
    const signature = sig instanceof File ? Buffer.from(await sig.arrayBuffer()).toString("base64") : undefined;
    if (signature && signature.length > 64 * 1024) throw invalid("signature: at most 64 KiB (base64)");
    return c.json(
      await tasks.update(id, { file: Buffer.from(bytes).toString("base64"), ...(signature ? { signature } : {}) }),
    );
  });
}
