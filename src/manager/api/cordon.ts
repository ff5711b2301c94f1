import type { Hono } from "hono";
import { QueryFlag } from "../../core/page.ts";
import type { Dispatcher } from "../dispatcher.ts";
import type { PropletRegistry } from "../proplets.ts";
import { query } from "./http.ts";

/**
 * `POST /proplets/{id}/cordon|uncordon|drain` (changes: admins only, auth.ts refuses viewers). Cordon: placement
 * skips the proplet; what runs there runs on. Uncordon: it takes work again, and waiting tasks are placed now.
 * Drain: cordon; with `force=true` its running tasks are also stopped there and settled as lost, so each runs
 * again elsewhere while its retries last. Waiting for running work to end is the client's (`proplets drain`).
 */
export function cordonRoutes(app: Hono, proplets: PropletRegistry, dispatcher: Dispatcher): void {
  // `:id` is a proplet's id or its name (as for GET /proplets/:id).
  app.post("/proplets/:id/cordon", async (c) =>
    c.json(await proplets.setCordoned(proplets.idOf(c.req.param("id")), true)),
  );
  app.post("/proplets/:id/uncordon", async (c) => {
    const view = await proplets.setCordoned(proplets.idOf(c.req.param("id")), false);
    dispatcher.drain();
    return c.json(view);
  });
  app.post("/proplets/:id/drain", async (c) => {
    const id = proplets.idOf(c.req.param("id"));
    const force = query(c, "force", QueryFlag);
    await proplets.setCordoned(id, true);
    if (force) {
      dispatcher.settleLost(id, `moved off proplet ${id}: it is being drained (drain --force)`);
    }
    return c.json(proplets.view(id));
  });
}
