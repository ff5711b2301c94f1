import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { TaskState } from "../../../src/core/states.ts";
import { newTask, type Task, TaskCreate } from "../../../src/core/task.ts";
import { DEFAULT_FIND, type TaskFind, TaskListQuery } from "../../../src/core/task-query.ts";
import type { Storage } from "../../../src/storage/repository.ts";
import { METRICS_RETENTION } from "../../../src/storage/retention.ts";
import { b64 } from "../../helpers.ts";
import { type Backend, kvBackend, memoryBackend, postgresBackend, sqliteBackend } from "./backends.ts";

// One contract, every backend: the same tests, unchanged, against each. What the manager relies on is here.

const BACKENDS: Backend[] = [sqliteBackend(), kvBackend(), memoryBackend(), postgresBackend()];

const at = (i: number) => new Date(1_700_000_000_000 + i * 1000).toISOString();
const task = (id: string, created: string, extra: Record<string, unknown> = {}): Task =>
  newTask(id, TaskCreate.parse({ name: "add", file: b64("add"), ...extra }), created);

for (const backend of BACKENDS) {
  describe(`storage contract: ${backend.name}`, () => {
    const open: Storage[] = [];
    const fresh = async () => {
      const s = await backend.fresh();
      open.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
    });
    afterAll(() => backend.done?.());

    test("a task keeps every field; listings leave the module out; a write without it keeps it", async () => {
      const s = await fresh();
      const t = task("t1", at(1), {
        inputs: [1, 2],
        env: { A: "b" },
        schedule: "*/5 * * * *",
        timezone: "Europe/Paris",
        priority: 70,
        max_retries: 2,
        metadata: { team: "edge", n: 3 },
        daemon: true,
      });
      s.tasks.create(t);
      expect(s.tasks.get("t1")).toEqual(t);
      expect(s.tasks.list(0, 10).items[0]!.file).toBeUndefined();
      expect(s.tasks.listScheduled().map((x) => [x.id, x.file])).toEqual([["t1", undefined]]);
      s.tasks.update({ ...t, state: TaskState.Running, file: "ignored without withFile" });
      expect(s.tasks.get("t1")).toMatchObject({ state: TaskState.Running, file: t.file });
      expect(s.tasks.countByState()).toEqual({ [TaskState.Running]: 1 });
      const scanned = s.tasks.listScheduled()[0]!;
      s.tasks.update({ ...scanned, priority: 10, schedule: undefined });
      expect(s.tasks.get("t1")).toMatchObject({ priority: 10, file: t.file });
      expect(s.tasks.listScheduled()).toEqual([]);
      s.tasks.update({ ...t, file: b64("hello") }, true);
      expect(s.tasks.get("t1")!.file).toBe(b64("hello"));
      const copy = s.tasks.get("t1")!;
      copy.name = "changed by a caller";
      expect(s.tasks.get("t1")!.name).toBe("add");
      expect(s.tasks.delete("t1")).toBe(true);
      expect(s.tasks.delete("t1")).toBe(false);
      expect(s.tasks.get("t1")).toBeUndefined();
      expect(s.tasks.countByState()).toEqual({});
    });

    test("listings are newest first, ties by id, with offset, limit and total", async () => {
      const s = await fresh();
      // Out of order on purpose, and two with the same time.
      for (const i of [3, 1, 4, 0, 2]) s.tasks.create(task(`t${i}`, at(i)));
      s.tasks.create(task("t4b", at(4)));
      const ids = (o: number, l: number) => s.tasks.list(o, l).items.map((t) => t.id);
      expect(ids(0, 10)).toEqual(["t4b", "t4", "t3", "t2", "t1", "t0"]);
      expect(ids(2, 2)).toEqual(["t3", "t2"]);
      expect(ids(6, 5)).toEqual([]);
      expect(s.tasks.list(4, 1).total).toBe(6);
      s.tasks.delete("t3");
      expect(ids(0, 10)).toEqual(["t4b", "t4", "t2", "t1", "t0"]);
    });

    test("every page, near either end or across the middle, is its slice of the whole listing", async () => {
      const s = await fresh();
      for (let i = 0; i < 23; i++) s.tasks.create(task(`p${i}`, at(i % 7), { metadata: { odd: String(i % 2) } }));
      const all = s.tasks.list(0, 100).items.map((t) => t.id);
      const odd = s.tasks.list(0, 100, { odd: "1" }).items.map((t) => t.id);
      expect(all).toHaveLength(23);
      expect(odd).toHaveLength(11);
      for (const [o, l] of [
        [0, 5],
        [9, 5],
        [10, 4],
        [18, 5],
        [20, 10],
        [22, 1],
        [3, 19],
        [23, 2],
      ] as const) {
        expect(s.tasks.list(o, l).items.map((t) => t.id)).toEqual(all.slice(o, o + l));
        expect(s.tasks.list(o, l, { odd: "1" }).items.map((t) => t.id)).toEqual(odd.slice(o, o + l));
      }
    });

    test("filters: metadata as text, state, group in creation order, schedule, id prefix", async () => {
      const s = await fresh();
      s.tasks.create(task("a1", at(1), { metadata: { env: "prod", n: 3, on: true } }));
      s.tasks.create(task("a2", at(2), { metadata: { env: "prod", n: "3" } }));
      s.tasks.create(task("b1", at(3), { metadata: { env: "dev" } }));
      s.tasks.create(task("b2", at(4)));
      const meta = (f: Record<string, string>, o = 0, l = 10) => {
        const r = s.tasks.list(o, l, f);
        return [r.total, r.items.map((t) => t.id)];
      };
      expect(meta({ env: "prod" })).toEqual([2, ["a2", "a1"]]);
      expect(meta({ env: "prod", n: "3" })).toEqual([2, ["a2", "a1"]]);
      expect(meta({ on: "true" })).toEqual([1, ["a1"]]);
      expect(meta({ env: "prod" }, 1, 1)).toEqual([2, ["a1"]]);
      expect(meta({ env: "nowhere" })).toEqual([0, []]);

      const w = (id: string, i: number) => task(id, at(i), { name: "x" });
      for (const [id, i, wf] of [
        ["w2", 10, "wfA"],
        ["w1", 11, "wfA"],
        ["w3", 12, "wfB"],
      ] as const) {
        s.tasks.create({ ...w(id, i), workflow_id: wf, workflow_name: `the ${wf} file` });
      }
      s.tasks.create({ ...task("j1", at(13)), job_id: "jobA" });
      expect(s.tasks.listByGroup("workflow", "wfA").map((t) => t.id)).toEqual(["w2", "w1"]);
      expect(s.tasks.listByGroup("workflow", "wfA")[0]!.file).toBe(b64("add"));
      // A workflow's name is kept on its tasks (it is not stored apart).
      expect(s.tasks.listByGroup("workflow", "wfA").map((t) => t.workflow_name)).toEqual([
        "the wfA file",
        "the wfA file",
      ]);
      expect(s.tasks.get("w3")!.workflow_name).toBe("the wfB file");
      s.tasks.update({ ...s.tasks.get("w2")!, state: TaskState.Completed });
      expect(s.tasks.listByGroup("workflow", "wfA").map((t) => t.id)).toEqual(["w2", "w1"]);
      expect(s.tasks.groupIds("workflow").sort()).toEqual(["wfA", "wfB"]);
      expect(s.tasks.groupIds("job")).toEqual(["jobA"]);
      expect(s.tasks.listByGroup("job", "nojob")).toEqual([]);

      s.tasks.update({ ...s.tasks.get("b1")!, state: TaskState.Running });
      expect(
        s.tasks
          .listByState([TaskState.Running, TaskState.Completed])
          .map((t) => t.id)
          .sort(),
      ).toEqual(["b1", "w2"]);
      expect(s.tasks.listByState([TaskState.Running])[0]!.file).toBe(b64("add"));
      expect(s.tasks.countByState()).toEqual({ 0: 6, 2: 1, 3: 1 });
      s.tasks.create(task("c1", at(20), { schedule: "0 * * * *" }));
      expect(s.tasks.listScheduled().map((t) => t.id)).toEqual(["c1"]);
      expect(s.tasks.idsStartingWith("a", 5)).toEqual(["a1", "a2"]);
      expect(s.tasks.idsStartingWith("w", 2)).toEqual(["w1", "w2"]);
      expect(s.tasks.idsStartingWith("zz", 5)).toEqual([]);
    });

    test("find (GET /tasks): state, text, proplet, kind, job, workflow, metadata, sort and order, paged", async () => {
      const s = await fresh();
      const mk = (id: string, i: number, extra: Record<string, unknown>, fields: Partial<Task> = {}) =>
        s.tasks.create({ ...task(id, at(i), extra), ...fields });
      mk("t-alpha", 1, { name: "Alpha report", priority: 90, metadata: { team: "edge" } }, { proplet_id: "p1" });
      mk("t-beta", 2, { name: "beta_100%", priority: 10 }, { state: TaskState.Failed, proplet_id: "p2" });
      mk("t-gamma", 3, { name: "gamma", kind: "federated" }, { state: TaskState.Failed, job_id: "jobA" });
      mk("t-round1", 4, { name: "fl-round-r1-p1" }, { state: TaskState.Completed, proplet_id: "p1" });
      mk("t-round2", 5, { name: "fl-round-r1-p2" }, { state: TaskState.Failed, proplet_id: "p2" });
      mk("t-delta", 6, { name: "delta" }, { state: TaskState.Running, workflow_id: "wfA", proplet_id: "p1" });
      // An update changes what a filter and a sort see (updated_at, state).
      s.tasks.update({ ...s.tasks.get("t-alpha")!, state: TaskState.Interrupted, updated_at: at(50) });
      const find = (f: Partial<TaskFind>, offset = 0, limit = 10) => {
        const r = s.tasks.find({ ...DEFAULT_FIND, ...f }, offset, limit);
        expect(r.items.every((t) => t.file === undefined)).toBe(true);
        return [r.total, r.items.map((t) => t.id)];
      };
      const q = (text: string, offset = 0, limit = 10) => {
        const p = new URLSearchParams(text);
        const all = Object.fromEntries([...p.keys()].map((k) => [k, p.getAll(k)]));
        return find(TaskListQuery.parse(all), offset, limit);
      };
      // The default hides FL round tasks, newest first.
      expect(find({})).toEqual([4, ["t-delta", "t-gamma", "t-beta", "t-alpha"]]);
      expect(q("include_rounds=true")).toEqual([
        6,
        ["t-delta", "t-round2", "t-round1", "t-gamma", "t-beta", "t-alpha"],
      ]);
      expect(q("state=Failed")).toEqual([2, ["t-gamma", "t-beta"]]);
      expect(q("state=failed,6")).toEqual([3, ["t-gamma", "t-beta", "t-alpha"]]);
      expect(q("state=4&state=Interrupted&include_rounds=true")).toEqual([
        4,
        ["t-round2", "t-gamma", "t-beta", "t-alpha"],
      ]);
      expect(q("state=Failed", 1, 1)).toEqual([2, ["t-beta"]]);
      // Text: a name's substring in any case, or an id's; % and _ are text, not wildcards.
      expect(q("q=ALPHA")).toEqual([1, ["t-alpha"]]);
      expect(q("q=100%")).toEqual([1, ["t-beta"]]);
      expect(q("q=t_b")).toEqual([0, []]);
      expect(q("q=a_1")).toEqual([1, ["t-beta"]]);
      expect(q("q=t-del")).toEqual([1, ["t-delta"]]);
      expect(q("q=round")).toEqual([0, []]);
      expect(q("q=round&include_rounds=true")).toEqual([2, ["t-round2", "t-round1"]]);
      // Kind: a round task is federated whatever its kind field; kind=federated shows rounds.
      expect(q("kind=federated")).toEqual([3, ["t-round2", "t-round1", "t-gamma"]]);
      expect(q("kind=standard")).toEqual([3, ["t-delta", "t-beta", "t-alpha"]]);
      expect(q("kind=standard&include_rounds=true")).toEqual([3, ["t-delta", "t-beta", "t-alpha"]]);
      expect(find({ proplets: ["p1"] })).toEqual([2, ["t-delta", "t-alpha"]]);
      expect(find({ proplets: ["p2", "gone"], rounds: true })).toEqual([2, ["t-round2", "t-beta"]]);
      expect(q("job_id=jobA")).toEqual([1, ["t-gamma"]]);
      expect(q("workflow_id=wfA")).toEqual([1, ["t-delta"]]);
      expect(q("workflow_id=none")).toEqual([0, []]);
      expect(find({ metadata: { team: "edge" } })).toEqual([1, ["t-alpha"]]);
      expect(find({ metadata: { team: "edge" }, states: [TaskState.Failed] })).toEqual([0, []]);
      // Sorts, ties by creation (in the same direction).
      expect(q("sort=name")).toEqual([4, ["t-alpha", "t-beta", "t-delta", "t-gamma"]]);
      expect(q("sort=name&order=desc")).toEqual([4, ["t-gamma", "t-delta", "t-beta", "t-alpha"]]);
      expect(q("sort=created_at&order=asc")).toEqual([4, ["t-alpha", "t-beta", "t-gamma", "t-delta"]]);
      expect(q("sort=priority")).toEqual([4, ["t-alpha", "t-delta", "t-gamma", "t-beta"]]);
      expect(q("sort=priority&order=asc")).toEqual([4, ["t-beta", "t-gamma", "t-delta", "t-alpha"]]);
      expect(q("sort=state&order=asc")).toEqual([4, ["t-delta", "t-beta", "t-gamma", "t-alpha"]]);
      expect(q("sort=updated_at")).toEqual([4, ["t-alpha", "t-delta", "t-gamma", "t-beta"]]);
      expect(q("sort=name", 1, 2)).toEqual([4, ["t-beta", "t-delta"]]);
    });

    test("runs: newest first, paged, per task", async () => {
      const s = await fresh();
      for (let i = 0; i < 5; i++) {
        s.runs.create({
          run_id: `r${i}`,
          task_id: "t1",
          attempt: i + 1,
          state: TaskState.Failed,
          status: "Failed",
          proplet_id: "p1",
          started_at: at(i),
          finished_at: at(i + 1),
          results: i === 4 ? { ok: 1 } : undefined,
          error: "boom",
        });
      }
      s.runs.create({ run_id: "other", task_id: "t2", attempt: 1, state: 3, status: "Completed", started_at: at(0) });
      const p = s.runs.listByTask("t1", 1, 2);
      expect(p.total).toBe(5);
      expect(p.items.map((r) => r.run_id)).toEqual(["r3", "r2"]);
      expect(s.runs.listByTask("t1", 0, 1).items[0]).toMatchObject({ run_id: "r4", results: { ok: 1 }, error: "boom" });
      expect(s.runs.listByTask("none", 0, 10)).toEqual({ total: 0, items: [] });
    });

    test("tasks sharing a module each read it back; changing or deleting one leaves the others' alone", async () => {
      const s = await fresh();
      const [a, b] = [b64("hello"), b64("ticker")]; // large enough to be shared, not copied
      s.tasks.create(task("m1", at(1), { file: a }));
      s.tasks.create(task("m2", at(2), { file: a }));
      s.tasks.update({ ...s.tasks.get("m1")!, file: b }, true);
      expect([s.tasks.get("m1")?.file, s.tasks.get("m2")?.file]).toEqual([b, a]);
      s.tasks.delete("m2");
      s.tasks.create(task("m3", at(3), { file: a }));
      expect([s.tasks.get("m1")?.file, s.tasks.get("m3")?.file]).toEqual([b, a]);
      await s.durable();
    });

    test("runs: a settled run takes its late result in place, not as another run", async () => {
      const s = await fresh();
      const run = { run_id: "r1", task_id: "t1", attempt: 1, state: 4, status: "Failed", started_at: at(1) };
      s.runs.create({ ...run, error: "proplet lost" });
      s.runs.create({ ...run, run_id: "r2", attempt: 2, state: 3, status: "Completed", started_at: at(2) });
      const late = { ...run, state: 3, status: "Completed", results: "42", error: "proplet lost (result came late)" };
      expect(s.runs.update(late)).toBe(true);
      expect(s.runs.update({ ...late, run_id: "none" })).toBe(false);
      const all = s.runs.listByTask("t1", 0, 10);
      expect(all.total).toBe(2);
      expect(all.items.map((r) => [r.run_id, r.results])).toEqual([
        ["r2", undefined],
        ["r1", "42"],
      ]);
      await s.durable();
    });

    test("jobs, proplets, tokens and entities keep every field, in their orders", async () => {
      const s = await fresh();
      s.jobs.create({ id: "j1", name: "one", execution_mode: "parallel", created_at: at(1) });
      s.jobs.create({ id: "j2", name: "two", execution_mode: "sequential", created_at: at(2) });
      expect(s.jobs.get("j2")).toEqual({ id: "j2", name: "two", execution_mode: "sequential", created_at: at(2) });
      expect(s.jobs.all().map((j) => j.id)).toEqual(["j2", "j1"]);
      expect(s.jobs.get("nope")).toBeUndefined();

      const p = { id: "p2", name: "edge", metadata: { os: "linux" }, alive_history: [at(1), at(2)], offline: true };
      s.proplets.upsert(p);
      s.proplets.upsert({ id: "p1", name: "a", metadata: {}, alive_history: [] });
      expect(s.proplets.get("p2")).toEqual(p);
      s.proplets.upsert({ ...p, alive_history: [at(3)], offline: undefined });
      expect(s.proplets.get("p2")).toEqual({
        id: "p2",
        name: "edge",
        metadata: { os: "linux" },
        alive_history: [at(3)],
      });
      expect(s.proplets.all().map((x) => x.id)).toEqual(["p1", "p2"]);
      expect(s.proplets.delete("p1")).toBe(true);
      expect(s.proplets.delete("p1")).toBe(false);

      s.tokens.create({ id: "k2", name: "b", role: "viewer", hash: "h2", created_at: at(2) });
      s.tokens.create({ id: "k1", name: "a", role: "admin", hash: "h1", created_at: at(1), expires_at: at(9) });
      s.tokens.update({ id: "k2", name: "b", role: "viewer", hash: "h2", created_at: at(2), revoked_at: at(3) });
      expect(s.tokens.all().map((t) => [t.id, t.revoked_at, t.expires_at])).toEqual([
        ["k1", undefined, at(9)],
        ["k2", at(3), undefined],
      ]);
      s.entities.create({ id: "e1", kind: "proplet", name: "e", key_hash: "x", created_at: at(1) });
      expect(s.entities.get("e1")).toEqual({ id: "e1", kind: "proplet", name: "e", key_hash: "x", created_at: at(1) });
      expect(s.entities.all()).toHaveLength(1);
    });

    test("a proplet identity's labels (set by the operator) are kept, replaced, and survive a restart", async () => {
      const s = await fresh();
      const e = { id: "e1", kind: "proplet" as const, name: "e", key_hash: "x", created_at: at(1) };
      s.entities.create({ ...e, labels: { gpu: "true", tee: "sev" } });
      expect(s.entities.get("e1")?.labels).toEqual({ gpu: "true", tee: "sev" });
      s.entities.update({ ...e, labels: { zone: "a" } });
      expect(s.entities.all()).toEqual([{ ...e, labels: { zone: "a" } }]);
      await s.durable();
      if (!backend.reopen) return;
      await s.close();
      open.splice(open.indexOf(s), 1);
      const again = await backend.reopen();
      open.push(again);
      expect(again.entities.get("e1")).toEqual({ ...e, labels: { zone: "a" } });
    });

    test("metrics samples are kept up to the bound, newest first, per owner", async () => {
      const s = await fresh();
      for (let i = 0; i < METRICS_RETENTION + 5; i++) s.metrics.addProplet("p", at(i), { i });
      s.metrics.addTask("t", at(1), { cpu: 1 });
      const page = s.metrics.listProplet("p", 0, 2);
      expect(page.total).toBe(METRICS_RETENTION);
      expect(page.items).toEqual([{ i: METRICS_RETENTION + 4 }, { i: METRICS_RETENTION + 3 }]);
      expect(s.metrics.listTask("t", 0, 10)).toEqual({ total: 1, items: [{ cpu: 1 }] });
      expect(s.metrics.listTask("p", 0, 10).total).toBe(0);
    });

    test("federated learning's documents: by kind and id, replaced, listed in id order, deleted", async () => {
      const s = await fresh();
      const big = JSON.stringify({ w: Array.from({ length: 200_000 }, (_, i) => i / 7), b: 1 });
      s.fl.put("model", "2", big);
      s.fl.put("model", "10", "{}");
      s.fl.put("dataset", "p1", '{"data":[]}');
      s.fl.put("model", "10", '{"w":[1]}');
      expect(s.fl.get("model", "2")).toBe(big);
      expect(s.fl.get("model", "10")).toBe('{"w":[1]}');
      expect(s.fl.get("dataset", "2")).toBeUndefined();
      expect(s.fl.ids("model")).toEqual(["10", "2"]);
      expect(s.fl.ids("experiment")).toEqual([]);
      expect(s.fl.delete("model", "10")).toBe(true);
      expect(s.fl.delete("model", "10")).toBe(false);
      expect(s.fl.ids("model")).toEqual(["2"]);
      await s.durable();
    });

    test("concurrent writers: every acknowledged write is there, counts add up", async () => {
      const s = await fresh();
      const writer = async (w: number) => {
        for (let i = 0; i < 40; i++) {
          const id = `w${w}-${i}`;
          s.tasks.create(task(id, at(i), { metadata: { writer: w } }));
          if (i % 2) s.tasks.update({ ...s.tasks.get(id)!, state: TaskState.Completed });
          if (i % 5 === 0) await s.durable();
          else await Bun.sleep(0);
        }
      };
      await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
      await s.durable();
      expect(s.tasks.list(0, 1).total).toBe(320);
      expect(s.tasks.countByState()).toEqual({ 0: 160, 3: 160 });
      expect(s.tasks.list(0, 100, { writer: "3" }).total).toBe(40);
    });

    test("probe() commits a small write and changes nothing a repository shows (readiness)", async () => {
      const s = await fresh();
      s.tasks.create(task("t1", at(1)));
      await s.probe();
      await s.probe();
      await s.durable();
      expect(s.tasks.list(0, 10).total).toBe(1);
      expect(s.tasks.get("t1")?.id).toBe("t1");
    });

    if (backend.reopen) {
      test("what durable() acknowledged is there after a restart, every field", async () => {
        const s = await fresh();
        const t = task("t1", at(1), { schedule: "*/5 * * * *", metadata: { k: "v" }, priority: 90 });
        s.tasks.create(t);
        s.jobs.create({ id: "j1", name: "job", execution_mode: "parallel", created_at: at(1) });
        s.runs.create({ run_id: "r1", task_id: "t1", attempt: 1, state: 4, status: "Failed", started_at: at(1) });
        s.runs.update({ run_id: "r1", task_id: "t1", attempt: 1, state: 3, status: "Completed", started_at: at(1) });
        s.fl.put("experiment", "e1", '{"k":1}');
        s.fl.put("update", "gone", "{}");
        s.fl.delete("update", "gone");
        await s.durable();
        // A restart: the first store is gone before the second opens (LMDB allows one per process and path).
        await s.close();
        open.splice(open.indexOf(s), 1);
        const again = await backend.reopen!();
        open.push(again);
        expect(again.tasks.get("t1")).toEqual(t);
        expect(again.tasks.listScheduled().map((x) => x.id)).toEqual(["t1"]);
        expect(again.jobs.get("j1")?.execution_mode).toBe("parallel");
        expect(again.runs.listByTask("t1", 0, 10).items.map((r) => r.status)).toEqual(["Completed"]);
        expect(again.fl.get("experiment", "e1")).toBe('{"k":1}');
        expect(again.fl.ids("update")).toEqual([]);
      });
    }
  });
}
