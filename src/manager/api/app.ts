import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AppError } from "../../core/errors.ts";
import type { Check } from "../../core/health.ts";
import { type Channel, DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../../core/topics.ts";
import { log } from "../../log.ts";
import { SpanKind, tracing } from "../../telemetry/tracing.ts";
import type { Manager } from "../manager.ts";
import { adminRoutes } from "./admin.ts";
import { type AuthOptions, identityRoutes, requireToken } from "./auth.ts";
import { eventRoutes } from "./events.ts";
import { flRoutes } from "./fl.ts";
import { groupRoutes } from "./groups.ts";
import { healthRoutes, PUBLIC_PROBES } from "./health.ts";
import { STATUS_OF } from "./http.ts";
import { logRoutes } from "./logs.ts";
import type { ManagerMetrics } from "./prometheus.ts";
import { propletRoutes } from "./proplets.ts";
import { sessionRoutes } from "./session.ts";
import { taskRoutes } from "./tasks.ts";

// The REST API with upstream's paths and JSON keys (docs/ARCHITECTURE.md, "REST"). Handlers validate with the core
// schemas and call one room each; errors are `{"error": "..."}` with the status of their kind, and 5xx only for
// our own faults.

export const MAX_BODY_BYTES = 100 * 1024 * 1024;

export interface AppInfo {
  version: string;
  instanceId: string;
  commit?: string;
  buildTime?: string;
  /** The storage backend in use, for `GET /health`. */
  storage?: string;
  /** With managers sharing PostgreSQL: "active" (a stand-by answers /health itself). */
  role?: string;
  /** The site's MQTT domain and channel, told to those who provision identities (default: "default"). */
  channel?: Channel;
  /** Served over TLS: the console's cookie is then Secure. */
  tls?: boolean;
  /** What `/readyz` and `/health` check (storage, broker, lease); none: always ready. */
  readiness?: () => Promise<Check[]>;
}

/** `auth` unset: no authentication (`serve --no-auth`, loopback only). */
export function createApp(m: Manager, info: AppInfo, metrics?: ManagerMetrics, auth?: AuthOptions): Hono {
  const app = new Hono();
  if (metrics) app.use("*", metrics.middleware());
  // A span per request when tracing is on; what the request starts (a dispatch) is its child.
  app.use("*", async (c, next) => {
    const t = tracing();
    if (!t.enabled) return next();
    const span = t.start(`${c.req.method} ${c.req.path}`, SpanKind.server, undefined, { "http.method": c.req.method });
    await t.within(span, next);
    span?.set("http.status_code", c.res.status).end(c.res.status >= 500 ? `HTTP ${c.res.status}` : undefined);
  });
  if (auth) app.use("*", requireToken(m.identities, auth));
  if (metrics) {
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

  // A reader sees only committed state: a result just received is shown once a crash can no longer undo it
  // (a few ms on PostgreSQL, less on SQLite; nothing to wait for most of the time).
  app.use("*", async (c, next) => {
    // The probes answer at once: a store that cannot commit is what /readyz reports, not a reason to hang.
    if (c.req.method === "GET" && !PUBLIC_PROBES.has(c.req.path)) await m.committed();
    await next();
  });

  app.onError((err, c) => {
    if (err instanceof AppError) return c.json({ error: err.message }, STATUS_OF[err.kind]);
    log.error(`${c.req.method} ${c.req.path}: ${err instanceof Error ? err.stack : err}`);
    return c.json({ error: err instanceof Error ? err.message : String(err) }, 500);
  });
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));

  // Internal ids only to an authenticated caller.
  const bearer = (c: Context) => /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
  healthRoutes(app, info, info.readiness ?? (async () => []), (c) => !auth || !!m.identities.verifyToken(bearer(c)));

  taskRoutes(app, m.tasks, m.telemetry, m.invocations);
  logRoutes(app, m.tasks, m.output);
  propletRoutes(app, m.proplets, m.telemetry);
  eventRoutes(app, m.events.live);
  groupRoutes(app, m.groups);
  flRoutes(app, m.fl);
  sessionRoutes(app, m.identities, { auth: Boolean(auth), secure: Boolean(info.tls) });
  adminRoutes(app, m);
  identityRoutes(app, m.identities, info.channel ?? { domainId: DEFAULT_DOMAIN_ID, channelId: DEFAULT_CHANNEL_ID });
  return app;
}
