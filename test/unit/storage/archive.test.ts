import { afterAll, describe, expect, test } from "bun:test";
import { newTask, TaskCreate } from "../../../src/core/task.ts";
import { dumpStore, isEmpty, readArchive, restoreStore } from "../../../src/storage/archive.ts";
import type { Storage } from "../../../src/storage/repository.ts";
import { b64 } from "../../helpers.ts";
import { type Backend, kvBackend, memoryBackend, sqliteBackend } from "./backends.ts";

// The portable archive through the repository interfaces: what one backend holds comes back whole in another
// (dumped again, it is the same archive), a module is written once, and a damaged archive is refused by line.

const at = (i: number) => new Date(1_700_000_000_000 + i * 1000).toISOString();
const BACKENDS: Backend[] = [sqliteBackend(), kvBackend(), memoryBackend()];
const opened: Storage[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
});
const fresh = async (b: Backend) => {
  const s = await b.fresh();
  opened.push(s);
  return s;
};

function fill(s: Storage): void {
  const task = (id: string, i: number, extra: Record<string, unknown> = {}) =>
    newTask(id, TaskCreate.parse({ name: "add", file: b64("add"), ...extra }), at(i));
  s.tasks.create(task("t1", 1, { metadata: { team: "edge" }, schedule: "*/5 * * * *" }));
  s.tasks.create(task("t2", 2, { inputs: [1, 2] }));
  s.tasks.create({ ...task("t3", 3), file: undefined, image_url: "registry.local/add:1" });
  s.runs.create({ run_id: "r1", task_id: "t2", attempt: 1, state: 4, status: "Failed", started_at: at(4) });
  s.runs.create({ run_id: "r2", task_id: "t2", attempt: 2, state: 3, status: "Completed", started_at: at(5) });
  s.jobs.create({ id: "j1", name: "one", execution_mode: "parallel", created_at: at(1) });
  s.proplets.upsert({ id: "p1", name: "edge-1", metadata: {}, alive_history: [at(2)] });
  s.metrics.addTask("t2", at(6), { task_id: "t2", timestamp: at(6), cpu: 1 });
  s.metrics.addTask("t2", at(7), { task_id: "t2", timestamp: at(7), cpu: 2 });
  s.metrics.addProplet("p1", at(8), { proplet_id: "p1", timestamp: at(8), mem: 3 });
  s.tokens.create({ id: "k1", name: "admin", role: "admin", hash: "h1", created_at: at(1) });
  s.tokens.create({ id: "k2", name: "old", role: "viewer", hash: "h2", created_at: at(2), revoked_at: at(3) });
  s.entities.create({ id: "e1", kind: "proplet", name: "edge-1", key_hash: "kh", created_at: at(1) });
  s.fl.put("experiment", "x1", '{"id":"x1"}');
  s.fl.put("model", "1", '{"w":[1,2]}');
}

/** The archive's records without its header (its time): what two dumps of equal stores share, in order. */
const body = (lines: string[]) => lines.slice(1).map((l) => JSON.parse(l));

describe("portable archive", () => {
  for (const from of BACKENDS)
    for (const to of BACKENDS)
      test(`${from.name} → ${to.name}: restored whole`, async () => {
        const a = await fresh(from);
        fill(a);
        await a.durable();
        const lines = dumpStore(a);
        const { records, counts } = readArchive(lines.join(""));
        expect(counts).toEqual({
          token: 2,
          entity: 1,
          proplet: 1,
          job: 1,
          module: 1, // two tasks, one module
          task: 3,
          run: 2,
          metric: 3,
          fl: 2,
        });
        const b = await fresh(to);
        expect(isEmpty(b)).toBe(true);
        await restoreStore(b, records);
        expect(isEmpty(b)).toBe(false);
        expect(b.tasks.get("t1")?.file).toBe(b64("add"));
        expect(b.tokens.get("k2")).toMatchObject({ hash: "h2", revoked_at: at(3) });
        expect(body(dumpStore(b))).toEqual(body(lines));
      });

  test("a damaged archive is refused naming what and where", async () => {
    const s = await fresh(memoryBackend());
    fill(s);
    const lines = dumpStore(s);
    const refused = (l: string[]) => {
      try {
        readArchive(l.join(""));
      } catch (e) {
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(refused(lines.slice(0, -2).concat(lines.slice(-1)))).toContain("cut off");
    expect(refused(lines.slice(0, -1))).toMatch(/^line \d+: /);
    const moduleLine = lines.findIndex((l) => l.includes('"k":"module"'));
    const forged = lines.map((l, i) => (i === moduleLine ? l.replace(b64("add"), "AGFzbQEAAAA=") : l));
    expect(refused(forged)).toContain("does not match its content");
    const badTask = lines.map((l) => (l.includes('"id":"t3"') ? l.replace('"state":0', '"state":"x"') : l));
    expect(refused(badTask)).toMatch(/^line \d+: v\.state/);
    expect(
      refused(['{"format":"propeller-archive","version":2,"source":"x","created_at":"x"}\n', lines.at(-1)!]),
    ).toContain("newer");
    expect(refused(["SQLite format 3\n"])).toContain("not a Propeller archive");
    // A record twice (its trailer's count made to match): refused here, before a store refused it half-way.
    const taskLine = lines.findIndex((l) => l.includes('"k":"task"') && l.includes('"id":"t2"'));
    const twice = [...lines.slice(0, taskLine + 1), lines[taskLine]!, ...lines.slice(taskLine + 1, -1)];
    const trailer = JSON.parse(lines.at(-1)!);
    twice.push(`${JSON.stringify({ ...trailer, records: trailer.records + 1 })}\n`);
    expect(refused(twice)).toMatch(/^line \d+: task t2 is in the archive twice$/);
  });
});
