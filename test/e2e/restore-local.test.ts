import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { b64, cli, http, startServe, tempDir, tokenOf, until } from "../helpers.ts";

// A site restored into a new data dir (a replaced gateway): its serve's local proplet comes back as itself. The
// archive did not say which proplet was serve's own, so the restored serve made a new one, the old one stayed
// listed as dead, and the tasks pinned to it waited for it for ever. Real serve processes and stores.

const get = (url: string, token: string): Promise<{ status: number; body: any }> =>
  fetch(url, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({
    status: r.status,
    body: await r.json(),
  }));
const post = (url: string, token: string): Promise<{ status: number; body: any }> =>
  fetch(url, { method: "POST", headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({
    status: r.status,
    body: await r.json(),
  }));

test("backup, restore into a new data dir, serve: one proplet, the old local one, and its pinned task runs", async () => {
  const a = await startServe();
  const admin = a.token!;
  const file = join(tempDir(), "site.jsonl");
  let localId: string;
  let pinned: string;
  try {
    const proplets = (await http<{ proplets: { id: string }[] }>(`${a.url}/proplets`)).body.proplets;
    expect(proplets.length).toBe(1);
    localId = proplets[0]!.id;
    pinned = (
      await http(`${a.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [2, 3], proplet_id: localId })
    ).body.id;
    const b = cli(["backup", file], { PROPELLER_URL: a.url, PROPELLER_TOKEN: tokenOf(a.url) });
    expect(b.code).toBe(0);
  } finally {
    await a.kill();
  }
  expect(JSON.parse(readFileSync(file, "utf8").split("\n")[0]!).local_proplet_id).toBe(localId);

  const dir = tempDir();
  const r = cli(["restore", file, "--data-dir", dir]);
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, "local-proplet-id"), "utf8")).toBe(localId);
  const b = await startServe({ dataDir: dir });
  try {
    const listed = (await get(`${b.url}/proplets`, admin)).body.proplets as { id: string; alive: boolean }[];
    expect(listed.map((p) => [p.id, p.alive])).toEqual([[localId, true]]);
    expect((await post(`${b.url}/tasks/${pinned}/start`, admin)).status).toBe(200);
    const done = await until("the pinned task to end", async () => {
      const t = (await get(`${b.url}/tasks/${pinned}`, admin)).body;
      return t.state >= 3 ? t : undefined;
    });
    expect(done).toMatchObject({ state: 3, results: "5", proplet_id: localId });
  } finally {
    await b.kill();
  }
}, 60_000);
