import { afterAll, describe, expect, test } from "bun:test";
import { run } from "../cli-run.ts";

// A task is given by its name as well as its id (manager/tasks.ts resolveId), and a name is free text: the CLI
// must put what was typed into one path segment. Unencoded, `tasks delete ../proplets/P` was DELETE /proplets/P
// (the URL parser folds the `..`), `tasks get 'a?b'` asked /tasks/a, and `tasks stop x/y` another route.

const seen: { method: string; path: string }[] = [];
const fake = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(req) {
    const u = new URL(req.url);
    seen.push({ method: req.method, path: u.pathname + u.search });
    return Response.json({ id: "t1", name: "x", state: 3, status: "Completed" });
  },
});
afterAll(() => fake.stop(true));
const url = `http://127.0.0.1:${fake.port}/pfx/`;

describe("a task named with /, .., ? or # stays one segment of /tasks/", () => {
  for (const [cmd, name, route] of [
    [["tasks", "delete"], "../../proplets/P1", ""],
    [["tasks", "stop"], "../backup", "/stop"],
    [["tasks", "get"], "a?limit=1", ""],
    [["tasks", "results"], "nightly/report#1", ""], // the task, which carries its results and its state
    [["tasks", "pause"], "50%", "/pause"],
  ] as const) {
    test(`${cmd.join(" ")} ${name}`, async () => {
      seen.length = 0;
      const r = await run([...cmd, name, "--url", url, "--token", "t"]);
      expect(seen.length).toBeGreaterThan(0);
      // Every path asked keeps the name in one segment.
      const segment = `/pfx/tasks/${encodeURIComponent(name)}`;
      expect(seen.map((x) => x.path)).toContain(`${segment}${route}`);
      for (const x of seen) expect(x.path.startsWith(segment)).toBe(true);
      expect(r.code).toBe(0);
    });
  }
});
