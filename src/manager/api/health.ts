import type { Context, Hono } from "hono";
import { type Check, verdict } from "../../core/health.ts";

// `/livez`, `/readyz` and upstream's `/health`, answered without a token (docs/ARCHITECTURE.md, "Health").
// `/livez` says the process answers; `/readyz` says whether every part it needs can do its work (200 or 503, with
// reasons in general words); `/health` keeps upstream's shape and says `fail` with the same reasons.

export const PUBLIC_PROBES = new Set(["/health", "/livez", "/readyz"]);

export interface HealthInfo {
  version: string;
  commit?: string;
  buildTime?: string;
  storage?: string;
  role?: string;
  /** Shown only to an authenticated caller: the manager's MQTT identities follow from it. */
  instanceId: string;
}

/** A 503 carries `error` as every REST error does, so `propeller health` says why and exits 1. */
const notReady = (reasons: string[]) => (reasons.length ? { error: `not ready: ${reasons.join("; ")}` } : {});

export function healthRoutes(
  app: Hono,
  info: HealthInfo,
  readiness: () => Promise<Check[]>,
  /** Whether the caller showed a valid token (or authentication is off). */
  trusted: (c: Context) => boolean,
): void {
  app.get("/livez", (c) => c.json({ status: "pass" }));
  app.get("/readyz", async (c) => {
    const v = verdict(await readiness());
    return c.json({ status: v.status, checks: v.checks, ...notReady(v.reasons) }, v.status === "pass" ? 200 : 503);
  });
  app.get("/health", async (c) => {
    const v = verdict(await readiness());
    return c.json(
      {
        status: v.status,
        version: info.version,
        commit: info.commit ?? "source",
        description: "manager service",
        build_time: info.buildTime ?? "unbuilt",
        ...(trusted(c) ? { instance_id: info.instanceId } : {}),
        ...(info.storage ? { storage: info.storage } : {}),
        ...(info.role ? { role: info.role } : {}),
        ...(v.reasons.length ? { reasons: v.reasons, ...notReady(v.reasons) } : {}),
      },
      v.status === "pass" ? 200 : 503,
    );
  });
}
