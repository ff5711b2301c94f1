import { afterAll, beforeAll, expect, test } from "bun:test";
import { MAX_ERROR_CHARS } from "../../src/core/clip.ts";
import { b64, http, runTask, type Serve, startServe } from "../helpers.ts";

// A guest's stderr is its task's error when it exits non-zero. 4 MiB of it was stored with the task and its run,
// logged whole twice, and sent in every listing and event: 30 such tasks made a viewer's `GET /events/recent`
// 344 MB and stalled serve (a fresh-eyes attacker's finding). The error keeps its start and its end.

let s: Serve;
beforeAll(async () => {
  s = await startServe();
}, 30_000);
afterAll(async () => {
  await s?.kill("SIGKILL");
});

test("4 MiB of a guest's stderr: the task's error is cut to its start and end, as are the events and logs", async () => {
  const t = await runTask(s.url, { name: "flood", file: b64("stderr-flood") });
  expect(t.state).toBe(4);
  expect(t.error.length).toBeLessThan(MAX_ERROR_CHARS + 64);
  expect(t.error.startsWith("exit code 3: AAAA")).toBe(true);
  expect(t.error).toContain("characters cut");
  expect(t.error.trimEnd().endsWith("why it failed")).toBe(true);
  const runs = (await http(`${s.url}/tasks/${t.id}/runs`)).body.runs as { error: string }[];
  expect(runs[0]!.error).toBe(t.error);
  const events = await fetch(`${s.url}/events/recent?limit=100`, {
    headers: { authorization: `Bearer ${s.token}` },
  }).then((r) => r.text());
  expect(events.length).toBeLessThan(64 * 1024);
  expect(s.output().length).toBeLessThan(256 * 1024);
}, 60_000);
