import { closeSync, openSync, rmSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import type { Hono } from "hono";
import { conflict } from "../../core/errors.ts";
import { MODULES } from "../../examples/modules.ts";
import type { Manager } from "../manager.ts";

/** A file's bytes as a stream, read a piece at a time; the handle is closed at the end or when the reader goes. */
function streamOf(fh: FileHandle): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(ctl) {
      const buf = new Uint8Array(1 << 20);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead > 0) ctl.enqueue(buf.subarray(0, bytesRead));
      else {
        ctl.close();
        await fh.close();
      }
    },
    cancel: () => fh.close(),
  });
}

/**
 * `GET /stats`: the fleet at a glance. `GET /examples`: the example modules the program carries (the console's
 * create form offers them). `POST /backup`: a consistent copy of the live database, as the response
 * body (admin only, like every write). The copy is made in the data dir (`backupDir`), created 0600 before the
 * database is written into it, and unlinked once opened: no copy of the database outlives the request or lies
 * where other users may read it (it used to be a 0644 file in /tmp).
 */
export function adminRoutes(app: Hono, m: Manager, backupDir?: string): void {
  app.get("/stats", (c) => c.json(m.stats()));
  app.get("/examples", (c) =>
    c.json({ examples: Object.entries(MODULES).map(([name, x]) => ({ name, about: x.about, file: x.wasm })) }),
  );
  app.post("/backup", async (c) => {
    if (!backupDir) throw conflict("this manager keeps no data dir to make a backup in");
    const file = join(backupDir, `backup-${crypto.randomUUID()}.tmp`);
    let fh: FileHandle;
    try {
      closeSync(openSync(file, "wx", 0o600)); // VACUUM INTO writes into an empty file as it finds it
      await m.backup(file);
      fh = await open(file, "r");
    } finally {
      rmSync(file, { force: true });
    }
    return c.body(streamOf(fh), 200, {
      "content-type": "application/vnd.sqlite3",
      "content-disposition": 'attachment; filename="propeller.db"',
    });
  });
}
