import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Batch, BUSY_CHECKPOINT_BYTES } from "../../../src/storage/sqlite/batch.ts";
import { Checkpointer } from "../../../src/storage/sqlite/checkpointer.ts";
import { tempDir } from "../../helpers.ts";

// WAL checkpoints run on a thread of their own (src/storage/sqlite/checkpointer.ts), against a real database file.

const walBytes = (path: string) => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);

const dirs: string[] = [];
/**
 * A database set up as serve's is (WAL, synchronous=NORMAL, 1 KiB pages), with its group commit; or without it
 * (`checkpoints: false`), for a test to run the checkpoint thread itself.
 */
function open(o = { checkpoints: true }) {
  const dir = tempDir();
  dirs.push(dir);
  const path = join(dir, "c.db");
  const db = new Database(path, { create: true, strict: true });
  db.run("PRAGMA page_size = 1024");
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA busy_timeout = 5000");
  db.run("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)");
  db.run("PRAGMA wal_checkpoint(TRUNCATE)"); // the table in the file itself, for rowsInFile
  if (!o.checkpoints) db.run("PRAGMA wal_autocheckpoint = 0");
  const batch = new Batch(db, o.checkpoints ? path : undefined);
  const insert = db.query("INSERT INTO blobs (data) VALUES (?)");
  const write = async (mib: number) => {
    batch.begin();
    insert.run(new Uint8Array(mib << 20).fill(7));
    await batch.durable();
  };
  return { path, db, batch, write };
}

/** Rows a copy of the database file alone holds: what a checkpoint moved out of the WAL. */
function rowsInFile(path: string): number {
  const dir = tempDir();
  dirs.push(dir);
  const copy = join(dir, "copy.db");
  copyFileSync(path, copy);
  const db = new Database(copy, { readonly: true });
  const n = db.query<{ n: number }, []>("SELECT count(*) AS n FROM blobs").get()!.n;
  db.close();
  return n;
}

/** The longest the main thread went without running a 1 ms timer while `work` was under way. */
async function longestStall<T>(work: Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 1);
  const result = await work;
  clearInterval(timer);
  return { result, stallMs };
}

describe("WAL checkpoints", () => {
  // Hundreds of MiB each: gone as soon as the test is.
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  test("a quiet store's WAL past 4 MiB is folded into the database and cut to nothing, 2 s after its last commit", async () => {
    const { path, db, batch, write } = open();
    for (let i = 0; i < 6; i++) await write(1);
    expect(walBytes(path)).toBeGreaterThan(6 << 20);
    expect(rowsInFile(path)).toBe(0);
    await Bun.sleep(1500);
    expect(walBytes(path)).toBeGreaterThan(6 << 20); // not before the store has been quiet for 2 s
    const deadline = performance.now() + 10_000;
    while (walBytes(path) > 0 && performance.now() < deadline) await Bun.sleep(50);
    expect(walBytes(path)).toBe(0);
    expect(rowsInFile(path)).toBe(6);
    batch.close();
    db.close();
  });

  test("a busy store's WAL is folded from 64 MiB on and starts over: it does not grow with what is written", async () => {
    const { path, db, batch, write } = open();
    let largest = 0;
    const fileBytes = () => statSync(path).size;
    // 192 MiB, written without a quiet moment at ~50 MiB/s (1 MiB a commit; a busy serve writes ~30 MiB/s); the size
    // is looked at every 250 ms, and writes go on while the thread folds. Were the WAL never started over, it would
    // reach 192 MiB.
    for (let i = 0; i < 192; i++) {
      await write(1);
      largest = Math.max(largest, walBytes(path));
      await Bun.sleep(15);
    }
    console.log(`192 MiB written: the WAL reached ${(largest / 2 ** 20).toFixed(0)} MiB`);
    console.log(`database file ${(fileBytes() / 2 ** 20).toFixed(0)} MiB`);
    expect(fileBytes()).toBeGreaterThan(60 << 20); // folded in while the writes went on
    expect(largest).toBeLessThan(BUSY_CHECKPOINT_BYTES * 2);
    batch.close();
    db.close();
  });

  test("a checkpoint of 160 MiB runs off the main thread: timers keep firing while it copies and fsyncs", async () => {
    const { path, db } = open({ checkpoints: false });
    for (let i = 0; i < 20; i++) db.query("INSERT INTO blobs (data) VALUES (?)").run(new Uint8Array(8 << 20).fill(7));
    expect(walBytes(path)).toBeGreaterThan(160 << 20);
    const checkpoints = new Checkpointer(path);
    const { result, stallMs } = await longestStall(checkpoints.run(true));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    console.log(
      `checkpoint of ${result.walPages} pages: ${result.ms.toFixed(0)} ms on its thread; main thread's longest stall ${stallMs.toFixed(1)} ms`,
    );
    expect(result.truncated).toBe(true);
    expect(walBytes(path)).toBe(0);
    expect(rowsInFile(path)).toBe(20);
    // Done on the main thread, the stall would be the whole checkpoint (60–110 ms here).
    expect(stallMs).toBeLessThan(Math.max(30, result.ms / 3));
    checkpoints.close();
    db.close();
  });

  test("closing the store while a checkpoint runs loses nothing: the database reopens with every row", async () => {
    const { path, db } = open({ checkpoints: false });
    for (let i = 0; i < 8; i++) db.query("INSERT INTO blobs (data) VALUES (?)").run(new Uint8Array(8 << 20).fill(7));
    const checkpoints = new Checkpointer(path);
    const running = checkpoints.run(true);
    checkpoints.close();
    db.close();
    // It may have finished, or have met the closing connection's own checkpoint and given way ("locked").
    const r = await running;
    if (!r.ok) expect(r.error).toMatch(/locked|busy/);
    const again = new Database(path);
    expect(again.query<{ n: number }, []>("SELECT count(*) AS n FROM blobs").get()!.n).toBe(8);
    again.close();
  });
});
