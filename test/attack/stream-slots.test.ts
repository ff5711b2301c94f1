import { afterAll, beforeAll, expect, test } from "bun:test";
import { b64, http, runTask, type Serve, startServe } from "../helpers.ts";

// A stream route asked with HEAD: hono runs the GET handler for it and drops the body unread, and the stream held
// one of its token's places (16) and the site's (--max-streams) for good. 16 HEADs with a viewer token left that
// token no stream; 256 without auth left the site none, until a restart; revoking the token did not help for a
// finished task's log stream. A HEAD is now answered with the headers alone (src/manager/api/sse.ts).

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--max-streams", "20"] });
}, 30_000);
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const head = (path: string, token: string) =>
  fetch(`${s.url}${path}`, { method: "HEAD", headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

/** Opens a stream, reads its first bytes and lets it go; its status. */
async function stream(path: string, token: string): Promise<number> {
  const ctl = new AbortController();
  const r = await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: ctl.signal });
  if (r.ok) await r.body!.getReader().read();
  ctl.abort();
  return r.status;
}

test("HEAD on a stream route takes no stream place: the token and the site still open streams after 40 of them", async () => {
  const viewer = (await http(`${s.url}/tokens`, "POST", { name: "looker", role: "viewer" })).body.token as string;
  const done = await runTask(s.url, { name: "add", file: b64("add"), inputs: [1, 2] });
  for (let i = 0; i < 20; i++) {
    expect(await head("/events?types=fl&task_id=none", viewer)).toBe(200);
    expect(await head(`/tasks/${done.id}/logs?follow=true`, viewer)).toBe(200);
  }
  // The token's own 16, and the site's 20, are all free.
  expect(await stream("/events?types=task", viewer)).toBe(200);
  expect(await stream(`/tasks/${done.id}/logs?follow=true`, viewer)).toBe(200);
  expect(await stream("/events?types=task", s.token!)).toBe(200);
}, 30_000);
