import { expect, test } from "bun:test";
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { b64, http, MAIN, ROOT, startServe, tempDir, tokenOf, until } from "../helpers.ts";

// Every copy of a store holds every identity's hash and every module: the archive, scheduled snapshots and the
// snapshot before a migration. Attacked as a local user or a client without admin rights would, against a real
// serve: none of them can read or take a copy, and a forged archive is refused before anything is written.

/** propeller with umask 000 (everything world-readable unless the program says otherwise). */
const UMASK0 = ["sh", "-c", 'umask 000; exec "$@"', "sh", process.execPath, MAIN];

const mode = (f: string) => statSync(f).mode & 0o777;

test("no archive for a stranger or a viewer; serve keeps answering", async () => {
  const s = await startServe({ extra: ["--no-local-proplet"] });
  try {
    await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add") });
    expect((await fetch(`${s.url}/backup`, { method: "POST" })).status).toBe(401);
    const viewer = (await http(`${s.url}/tokens`, "POST", { role: "viewer" })).body.token;
    const r = await fetch(`${s.url}/backup`, { method: "POST", headers: { authorization: `Bearer ${viewer}` } });
    expect(r.status).toBe(403);
    expect(await r.text()).not.toContain("hash");
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  } finally {
    await s.kill("SIGKILL");
  }
});

test("with umask 000, every copy of the store is still its owner's only", async () => {
  const dataDir = tempDir();
  // An older store: serve snapshots it before migrating.
  copyFileSync(join(ROOT, "test", "fixtures", "stores", "sqlite-v19.db"), join(dataDir, "propeller.db"));
  const s = await startServe({
    dataDir,
    cmd: UMASK0,
    extra: ["--no-local-proplet", "--snapshot-interval", "1s", "--snapshot-keep", "1"],
  });
  const dir = join(dataDir, "snapshots");
  const file = join(tempDir(), "site.jsonl");
  try {
    await until("a scheduled snapshot", () => readdirSync(dir).some((n) => n.startsWith("scheduled-")), 10_000);
    const b = Bun.spawnSync([...UMASK0, "backup", file], {
      env: { ...process.env, PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) },
    });
    expect(b.exitCode).toBe(0);
  } finally {
    await s.kill("SIGKILL");
  }
  expect(mode(dir)).toBe(0o700);
  const names = readdirSync(dir);
  expect(names.some((n) => n.startsWith("pre-migrate-"))).toBe(true);
  for (const n of names) expect(`${n} ${mode(join(dir, n)).toString(8)}`).toBe(`${n} 600`);
  expect(mode(file)).toBe(0o600);
  expect(readFileSync(file, "utf8")).toContain('"hash"'); // what the modes protect
});

test("a forged or cut-off archive is refused naming the line, and nothing is created", () => {
  const good = [
    JSON.stringify({ format: "propeller-archive", version: 1, source: "sqlite", created_at: "2026-01-01T00:00:00Z" }),
    JSON.stringify({ k: "module", id: "0".repeat(64), file: b64("add") }),
    JSON.stringify({ k: "token", v: { id: "k", name: "admin", role: "admin", created_at: "x" } }),
  ];
  const cases: [string, string[], string][] = [
    // A module whose bytes were swapped for others keeps its old name: the digest gives it away.
    ["forged module", [good[0]!, good[1]!, '{"end":true,"records":1}'], "does not match its content"],
    // A token without its hash (or with a role the schema does not know) is not an identity.
    ["token without hash", [good[0]!, good[2]!, '{"end":true,"records":1}'], "line 2: v.hash"],
    // A copy cut short by a full disk: the trailer's count says so.
    ["cut off", [good[0]!, '{"end":true,"records":5}'], "cut off"],
  ];
  for (const [what, lines, says] of cases) {
    const file = join(tempDir(), `${what}.jsonl`);
    writeFileSync(file, `${lines.join("\n")}\n`);
    const into = join(tempDir(), "site");
    const r = Bun.spawnSync([process.execPath, MAIN, "restore", file, "--data-dir", into]);
    expect(`${what}: ${r.exitCode}`).toBe(`${what}: 1`);
    expect(r.stderr.toString()).toContain(says);
    expect(existsSync(into)).toBe(false);
  }
});
