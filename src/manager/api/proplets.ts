import type { Hono } from "hono";
import { z } from "zod";
import { propletSdf } from "../../core/sdf.ts";
import type { PropletRegistry } from "../proplets.ts";
import type { Telemetry } from "../telemetry.ts";
import { paged, query } from "./http.ts";

const Status = z.enum(["active", "inactive"]).optional();

/** `/proplets…`: the fleet, its metrics and heartbeat history, and each proplet as an SDF document. */
export function propletRoutes(app: Hono, proplets: PropletRegistry, telemetry: Telemetry): void {
  app.get("/proplets", (c) => {
    const status = query(c, "status", Status);
    return paged(c, "proplets", (offset, limit) => ({ offset, limit, ...proplets.list(offset, limit, status) }));
  });
  app.get("/proplets/:id", (c) => c.json(proplets.view(c.req.param("id"))));
  app.get("/proplets/:id/sdf", (c) => c.json(propletSdf(proplets.view(c.req.param("id")))));
  // `:id` is a proplet's id or its name.
  app.get("/proplets/:id/metrics", (c) =>
    paged(c, "metrics", (o, l) => telemetry.propletMetrics(proplets.idOf(c.req.param("id")), o, l)),
  );
  app.get("/proplets/:id/alive-history", (c) =>
    paged(c, "history", (offset, limit) => ({
      offset,
      limit,
      ...proplets.aliveHistory(c.req.param("id"), offset, limit),
    })),
  );
  app.delete("/proplets/:id", async (c) => {
    await proplets.remove(c.req.param("id"));
    return c.body(null, 204);
  });
}
