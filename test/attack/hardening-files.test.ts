import { describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync, watch, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bigModule } from "../heavy-module.ts";
import { authHeader, http, spawnPropeller, spawnProplet, startServe, tempDir, until } from "../helpers.ts";

// Attacks on the data dir's files and backups (issue 25, item 9), against real serve and proplet processes. What
// modules cost is hardening.test.ts; self-reported claims, hardening-claims.test.ts.

/** Every file and folder under `dir` that group or others may use, with its mode. */
function openToOthers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    const mode = statSync(d).mode & 0o777;
    if (mode & 0o077) out.push(`${d} ${mode.toString(8)}`);
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.isFile() && statSync(path).mode & 0o077)
        out.push(`${path} ${(statSync(path).mode & 0o777).toString(8)}`);
    }
  };
  walk(dir);
  return out;
}

describe("files: the data dir and backups are the owner's only", () => {
  test("an existing 0755 data dir with 0644 database files is made private; new files are 0600", async () => {
    const dir = join(tempDir(), "site");
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    let s = await startServe({ dataDir: dir });
    await s.kill();
    // As an older serve (umask 022) or a careless copy left it.
    chmodSync(dir, 0o755);
    for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
    expect(openToOthers(dir).length).toBeGreaterThan(2);
    s = await startServe({ dataDir: dir });
    try {
      expect(openToOthers(dir)).toEqual([]);
      expect(s.output()).toMatch(/data dir .* \(mode 755\): \d+ item\(s\) were open to other users, now private/);
      expect(readdirSync(dir)).toContain("propeller.db");
    } finally {
      await s.kill();
    }
  }, 30_000);

  test("a data dir another user owns is refused, naming the owner", async () => {
    if (process.getuid?.() !== 0) return; // only root can give a dir away
    const dir = join(tempDir(), "theirs");
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    const p = spawnPropeller(["serve", "--data-dir", dir, "--http-port", "0", "--mqtt-port", "0"]);
    const exited = await Promise.race([p.proc.exited, Bun.sleep(15_000).then(() => "still running")]);
    await p.kill("SIGKILL");
    expect(exited).not.toBe(0);
    expect(exited).not.toBe("still running");
    expect(p.output()).toContain(`--data-dir ${dir} belongs to uid 65534, not to this process (uid 0)`);
  }, 30_000);

  test("a proplet's state dir is tightened too", async () => {
    const s = await startServe({ extra: ["--no-local-proplet"] });
    const state = join(tempDir(), "proplet");
    mkdirSync(join(state, "outbox"), { recursive: true });
    chmodSync(state, 0o755);
    chmodSync(join(state, "outbox"), 0o755);
    writeFileSync(join(state, "offline.json"), '{"from":"2026-01-01T00:00:00Z"}', { mode: 0o644 });
    const p = await spawnProplet(s, "tidy", { PROPLET_DATA_DIR: state });
    try {
      await until("the proplet to be alive", async () => (await http(`${s.url}/proplets/tidy`)).body?.alive === true);
      expect(openToOthers(state)).toEqual([]);
    } finally {
      await p.kill();
      await s.kill();
    }
  }, 30_000);

  test("POST /backup leaves no copy of the database in /tmp, and none behind in the data dir", async () => {
    const s = await startServe();
    const seen: string[] = [];
    const watcher = watch(tmpdir(), (_, name) => {
      if (name && /backup|propeller-copy/i.test(String(name))) seen.push(String(name));
    });
    try {
      expect(
        (await http(`${s.url}/tasks`, "POST", { name: "kept", file: Buffer.from(bigModule(1, 1)).toString("base64") }))
          .status,
      ).toBe(201);
      const res = await fetch(`${s.url}/backup`, { method: "POST", headers: authHeader(s.url) });
      expect(res.status).toBe(200);
      // The portable archive (storage/archive.ts), streamed from one read: no file on the way.
      const text = await res.text();
      expect(JSON.parse(text.split("\n")[0]!)).toMatchObject({ format: expect.stringContaining("propeller") });
      expect(text).toContain("kept");
      await Bun.sleep(200); // inotify events arrive after the fact
      expect(seen).toEqual([]);
      expect(readdirSync(s.dataDir).filter((f) => f.includes("backup") || f.includes("copy"))).toEqual([]);
      expect(openToOthers(s.dataDir)).toEqual([]);
    } finally {
      watcher.close();
      await s.kill();
    }
  }, 30_000);
});
