import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { AppError, badRequest, describeZodError } from "../../core/errors.ts";
import { JobCreate, JobStatus, WorkflowCreate } from "../../core/job.ts";
import { PageQuery } from "../../core/page.ts";
import { TaskCreate, TaskUpdate } from "../../core/task.ts";
import { log } from "../../log.ts";
import type { Coordinator } from "../coordinator.ts";
import { EVENT_TYPES, type EventType, type ManagerEvent } from "../events.ts";
import type { ManagerMetrics } from "../metrics.ts";
import type { ManagerService, PageOut } from "../service.ts";

// REST API with upstream's paths and JSON keys (DESIGN §5). Handlers validate with the core schemas and call the
// service; errors are `{"error": "..."}` with 400/404/409/413, and 5xx only for our own faults.

export const MAX_BODY_BYTES = 100 * 1024 * 1024;

export interface AppInfo {
  version: string;
  instanceId: string;
}

async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const type = c.req.header("content-type") ?? "";
  if (!type.includes("application/json")) throw badRequest("Content-Type must be application/json");
  const text = await c.req.text();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw badRequest(`body is not valid JSON: ${e instanceof Error ? e.message : e}`);
  }
  const r = schema.safeParse(data);
  if (!r.success) throw badRequest(describeZodError(r.error));
  return r.data;
}

function page(c: Context): z.output<typeof PageQuery> {
  const r = PageQuery.safeParse({ offset: c.req.query("offset"), limit: c.req.query("limit") });
  if (!r.success) throw badRequest(r.error.issues.map((i) => i.message).join("; "));
  return r.data;
}

/** A paged listing: `?offset&limit` in, `{offset, limit, total, <key>: [...]}` out. */
function paged<T>(c: Context, key: string, list: (offset: number, limit: number) => PageOut<T>): Response {
  const p = page(c);
  const r = list(p.offset, p.limit);
  return c.json({ offset: r.offset, limit: r.limit, total: r.total, [key]: r.items });
}

function query<S extends z.ZodType>(c: Context, name: string, schema: S): z.output<S> {
  const r = schema.safeParse(c.req.query(name) || undefined);
  if (!r.success) throw badRequest(`${name}: ${r.error.issues[0]!.message}`);
  return r.data;
}

export function createApp(svc: ManagerService, groups: Coordinator, info: AppInfo, metrics?: ManagerMetrics): Hono {
  const app = new Hono();
  if (metrics) {
    app.use("*", metrics.middleware());
    app.get("/metrics", async (c) =>
      c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }),
    );
  }

  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json({ error: `request body exceeds ${MAX_BODY_BYTES >> 20} MiB` }, 413),
    }),
  );

  app.onError((err, c) => {
    if (err instanceof AppError) return c.json({ error: err.message }, err.status);
    log.error(`${c.req.method} ${c.req.path}: ${err instanceof Error ? err.stack : err}`);
    return c.json({ error: err instanceof Error ? err.message : String(err) }, 500);
  });
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));

  app.get("/health", (c) =>
    c.json({
      status: "pass",
      version: info.version,
      commit: "none",
      description: "manager service",
      build_time: "unknown",
      instance_id: info.instanceId,
    }),
  );

  // ---- tasks ----
  app.post("/tasks", async (c) => {
    const task = await svc.createTask(await jsonBody(c, TaskCreate));
    c.header("Location", `/tasks/${task.id}`);
    return c.json(task, 201);
  });
  app.get("/tasks", (c) => paged(c, "tasks", (o, l) => svc.listTasks(o, l)));
  app.get("/tasks/:id", (c) => c.json(svc.getTask(c.req.param("id"))));
  app.put("/tasks/:id", async (c) => c.json(await svc.updateTask(c.req.param("id"), await jsonBody(c, TaskUpdate))));
  app.delete("/tasks/:id", async (c) => {
    await svc.deleteTask(c.req.param("id"));
    return c.body(null, 204);
  });
  app.post("/tasks/:id/start", async (c) => c.json(await svc.startTask(c.req.param("id"))));
  app.post("/tasks/:id/stop", async (c) => c.json(await svc.stopTask(c.req.param("id"))));
  app.get("/tasks/:id/results", (c) => c.json(svc.getResults(c.req.param("id"))));
  app.get("/tasks/:id/metrics", (c) => paged(c, "metrics", (o, l) => svc.taskMetrics(c.req.param("id"), o, l)));
  app.get("/tasks/:id/runs", (c) => paged(c, "runs", (o, l) => svc.listRuns(c.req.param("id"), o, l)));
  app.put("/tasks/:id/upload", async (c) => {
    const id = c.req.param("id");
    svc.getTask(id); // 404 before reading a large body
    let form: FormData;
    try {
      form = await c.req.formData();
    } catch {
      throw badRequest("expected a multipart/form-data body with a `file` field");
    }
    const file = form.get("file");
    if (!(file instanceof File)) throw badRequest("file: is required (multipart field `file` with a .wasm file)");
    if (!file.name.endsWith(".wasm"))
      throw badRequest(`file: invalid file extension in ${JSON.stringify(file.name)}, expected .wasm`);
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
      throw badRequest("file: invalid WASM file: missing magic bytes");
    }
    return c.json(await svc.updateTask(id, { file: Buffer.from(bytes).toString("base64") }));
  });

  // ---- proplets ----
  app.get("/proplets", (c) =>
    paged(c, "proplets", (o, l) =>
      svc.listProplets(o, l, query(c, "status", z.enum(["active", "inactive"]).optional())),
    ),
  );
  app.get("/proplets/:id", (c) => c.json(svc.getProplet(c.req.param("id"))));
  app.get("/proplets/:id/metrics", (c) => paged(c, "metrics", (o, l) => svc.propletMetrics(c.req.param("id"), o, l)));
  app.get("/proplets/:id/alive-history", (c) =>
    paged(c, "history", (o, l) => svc.aliveHistory(c.req.param("id"), o, l)),
  );
  app.delete("/proplets/:id", async (c) => {
    await svc.deleteProplet(c.req.param("id"));
    return c.body(null, 204);
  });

  // ---- live events (Server-Sent Events) ----
  app.get("/events", (c) => {
    const typesText = c.req.query("types");
    const types = typesText
      ? typesText
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean)
      : EVENT_TYPES;
    const unknown = types.filter((t) => !EVENT_TYPES.includes(t as EventType));
    if (unknown.length)
      throw badRequest(`types: unknown event type ${unknown.join(", ")} (use ${EVENT_TYPES.join(", ")})`);
    const taskId = c.req.query("task_id");
    const propletId = c.req.query("proplet_id");
    const wanted = (e: ManagerEvent) =>
      types.includes(e.type) &&
      (!taskId || ("task_id" in e && e.task_id === taskId)) &&
      (!propletId || ("proplet_id" in e && e.proplet_id === propletId));
    return streamSSE(c, async (stream) => {
      const queue: ManagerEvent[] = [];
      let wake: (() => void) | undefined;
      let open = true;
      const unsubscribe = svc.events.subscribe((e) => {
        if (!wanted(e)) return;
        queue.push(e);
        wake?.();
      });
      stream.onAbort(() => {
        open = false;
        unsubscribe();
        wake?.();
      });
      await stream.write(": connected\n\n");
      while (open) {
        while (queue.length) {
          const e = queue.shift()!;
          await stream.writeSSE({ event: e.type, data: JSON.stringify(e) });
        }
        // Wait for the next event; a comment every 5 s keeps idle connections (and Bun's idle timeout) alive.
        const idle = await new Promise<boolean>((resolve) => {
          wake = () => resolve(false);
          setTimeout(() => resolve(true), 5000);
        });
        wake = undefined;
        if (idle && open) await stream.write(": keep-alive\n\n");
      }
    });
  });

  // ---- jobs ----
  app.post("/jobs", async (c) => {
    const job = await groups.createJob(await jsonBody(c, JobCreate));
    c.header("Location", `/jobs/${job.job_id}`);
    return c.json(job, 201);
  });
  app.get("/jobs", (c) => paged(c, "jobs", (o, l) => groups.listJobs(o, l, query(c, "status", JobStatus))));
  app.get("/jobs/:id", (c) => c.json(groups.getJob(c.req.param("id"))));
  app.post("/jobs/:id/start", async (c) => c.json(await groups.startJob(c.req.param("id"))));
  app.post("/jobs/:id/stop", async (c) => c.json(await groups.stopJob(c.req.param("id"))));

  // ---- workflows ----
  app.post("/workflows", async (c) => c.json(await groups.createWorkflow(await jsonBody(c, WorkflowCreate)), 201));
  app.get("/workflows/:id", (c) => c.json(groups.getWorkflow(c.req.param("id"))));
  app.post("/workflows/:id/start", async (c) => c.json(await groups.startWorkflow(c.req.param("id"))));

  return app;
}
