import type { Hono } from "hono";
import { MODULES } from "../../examples/modules.ts";
import type { Manager } from "../manager.ts";

/**
 * `GET /stats`: the fleet at a glance. `GET /examples`: the example modules the program carries (the console's
 * create form offers them). `POST /backup`: the whole store as a portable archive (JSON lines, whatever the
 * backend; storage/archive.ts), as the response body, with no file on the way (admin only, like every write).
 */
export function adminRoutes(app: Hono, m: Manager): void {
  app.get("/stats", (c) => c.json(m.stats()));
  app.get("/examples", (c) =>
    c.json({ examples: Object.entries(MODULES).map(([name, x]) => ({ name, about: x.about, file: x.wasm })) }),
  );
  app.post("/backup", async (c) => {
    const lines = await m.archive();
    let i = 0;
    // Sent line by line from the one consistent read: no second copy of a large store as one string.
    const body = new ReadableStream<Uint8Array>({
      pull(ctl) {
        const enc = new TextEncoder();
        for (let n = 0; n < 256 && i < lines.length; n++) ctl.enqueue(enc.encode(lines[i++]!));
        if (i >= lines.length) ctl.close();
      },
    });
    return c.body(body, 200, {
      "content-type": "application/x-ndjson",
      "content-disposition": 'attachment; filename="propeller-archive.jsonl"',
    });
  });
}
