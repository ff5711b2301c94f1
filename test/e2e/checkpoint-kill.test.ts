import { Database } from "bun:sqlite";
import { expect, test } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { http, type Serve, startServe, tempDir } from "../helpers.ts";

// Checkpoints run on a thread of their own (storage/sqlite/checkpointer.ts). A serve killed with SIGKILL while the
// quiet-time checkpoint after a 20 MB inline module copies the WAL into the database loses nothing it
// acknowledged, and starts again on the same data dir; one stopped with SIGTERM meanwhile exits promptly, cleanly.

/** A valid module with a custom section of `n` random bytes (incompressible: every page is really written). */
function bulky(n: number): string {
  const payload = crypto.getRandomValues(new Uint8Array(n));
  const name = new TextEncoder().encode("pad");
  const leb = (v: number) => {
    const out: number[] = [];
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v) b |= 0x80;
      out.push(b);
    } while (v);
    return out;
  };
  const body = [...leb(name.length), ...name];
  const head = Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0, ...leb(body.length + n), ...body);
  const all = new Uint8Array(head.length + n);
  all.set(head);
  for (let i = 0; i < n; i += 65536) all.set(payload.subarray(i, Math.min(n, i + 65536)), head.length + i);
  return Buffer.from(all).toString("base64");
}

const size = (f: string) => {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
};

test("SIGKILL during the quiet-time checkpoint of a 20 MB module loses no acknowledged task; SIGTERM during one exits", async () => {
  const dir = tempDir();
  const db = join(dir, "propeller.db");
  const made: { id: string; tail: string }[] = [];
  let s: Serve = await startServe({ dataDir: dir });
  try {
    for (let round = 0; round < 3; round++) {
      const file = bulky(20 << 20);
      const r = await http<{ id: string }>(`${s.url}/tasks`, "POST", { name: `big-${round}`, file });
      expect(r.status).toBe(201);
      made.push({ id: r.body.id, tail: file.slice(-10) });
      // Small acknowledged writes after it too.
      for (let i = 0; i < 5; i++) {
        const t = await http<{ id: string }>(`${s.url}/tasks`, "POST", {
          name: `small-${round}-${i}`,
          file: bulky(16),
        });
        made.push({ id: t.body.id, tail: "" });
      }
      // Kill when the checkpoint is copying: the database file grows (or, late, at most 4 s on).
      const before = size(db);
      const deadline = Date.now() + 4000;
      while (size(db) <= before + (1 << 20) && Date.now() < deadline) await Bun.sleep(2);
      const signal = round === 2 ? "SIGTERM" : "SIGKILL";
      const t0 = Date.now();
      await s.kill(signal);
      if (signal === "SIGTERM") {
        expect(Date.now() - t0).toBeLessThan(5000);
        expect(s.proc.exitCode).toBe(0);
      }
      s = await startServe({ dataDir: dir, ports: { http: s.httpPort, mqtt: s.mqttPort } });
      for (const m of made) {
        const g = await http<{ id: string; file?: string }>(`${s.url}/tasks/${m.id}`);
        expect(g.status).toBe(200);
        if (m.tail) expect(g.body.file?.endsWith(m.tail)).toBe(true);
      }
    }
  } finally {
    await s.kill();
  }
  const d = new Database(db, { readonly: true });
  try {
    expect(d.query<{ integrity_check: string }, []>("PRAGMA integrity_check").get()?.integrity_check).toBe("ok");
  } finally {
    d.close();
  }
}, 120_000);
