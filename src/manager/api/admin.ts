import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hono } from "hono";
import type { Manager } from "../manager.ts";

/**
 * `GET /stats`: the fleet at a glance. `POST /backup`: a consistent copy of the live database, as the response
 * body (admin only, like every write).
 */
export function adminRoutes(app: Hono, m: Manager): void {
  app.get("/stats", (c) => c.json(m.stats()));
  app.post("/backup", async (c) => {
    const file = join(tmpdir(), `propeller-backup-${crypto.randomUUID()}.db`);
    try {
      await m.backup(file);
      const bytes = readFileSync(file);
      return c.body(bytes, 200, {
        "content-type": "application/vnd.sqlite3",
        "content-disposition": 'attachment; filename="propeller.db"',
      });
    } finally {
      rmSync(file, { force: true });
    }
  });
}
