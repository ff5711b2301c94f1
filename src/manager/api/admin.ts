import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hono } from "hono";
import { MODULES } from "../../examples/modules.ts";
import type { Manager } from "../manager.ts";

/**
 * `GET /stats`: the fleet at a glance. `GET /examples`: the example modules the program carries (the console's
 * create form offers them). `POST /backup`: a consistent copy of the live database, as the response
 * body (admin only, like every write).
 */
export function adminRoutes(app: Hono, m: Manager): void {
  app.get("/stats", (c) => c.json(m.stats()));
  app.get("/examples", (c) =>
    c.json({ examples: Object.entries(MODULES).map(([name, x]) => ({ name, about: x.about, file: x.wasm })) }),
  );
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
