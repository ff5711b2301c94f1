import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { b64, freePort, MAIN, runTask, type Serve, startServe, tempDir, until } from "../helpers.ts";

// Logs and metrics as an operator's tools read them, from real serve processes: journald's priority prefix when
// stderr is journald's stream, JSON lines with the ids as fields, and /metrics with process_* and build info.

const procs: { kill(signal?: NodeJS.Signals | number): unknown }[] = [];
afterAll(async () => {
  for (const p of procs) await p.kill("SIGKILL");
});

/** serve with stderr into a file, and $JOURNAL_STREAM naming that file (as systemd names its stream) or another. */
async function serveToFile(journal: "match" | "other") {
  const log = join(tempDir(), "stderr");
  writeFileSync(log, "");
  const st = statSync(log);
  const stream = journal === "match" ? `${st.dev}:${st.ino}` : `${st.dev}:${st.ino + 1}`;
  const [http, mqtt] = [await freePort(), await freePort()];
  const dataDir = tempDir();
  const proc = Bun.spawn([process.execPath, MAIN, "serve", "--http-port", String(http), "--mqtt-port", String(mqtt)], {
    env: { ...process.env, JOURNAL_STREAM: stream, PROPELLER_DATA_DIR: dataDir },
    stdout: "ignore",
    stderr: Bun.file(log),
  });
  procs.push(proc);
  const url = `http://127.0.0.1:${http}`;
  await until("serve to answer", async () => (await fetch(`${url}/readyz`)).ok, 15_000);
  const token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  return { url, token, lines: () => readFileSync(log, "utf8").split("\n").filter(Boolean), proc };
}

describe("journald", () => {
  test("under journald every line starts with its syslog priority; a failed task is <4>", async () => {
    const s = await serveToFile("match");
    await until("the start-up lines", () => s.lines().some((l) => l.includes("propeller serve: REST on")));
    const api = (path: string, body?: unknown) =>
      fetch(`${s.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
        ...(body ? { body: JSON.stringify(body) } : {}),
      }).then((r) => r.json() as Promise<any>);
    const t = await api("/tasks", { name: "fail", file: b64("fail") });
    await api(`/tasks/${t.id}/start`);
    const failed = await until("the failure lines", () => {
      const f = s.lines().filter((l) => l.includes(`task_id=${t.id}`) && l.includes("task failed"));
      return f.length >= 2 ? f : undefined;
    });
    for (const l of failed) expect(l).toStartWith("<4>");
    for (const l of s.lines()) expect(l).toMatch(/^<[3467]>/);
    expect(s.lines().find((l) => l.includes("propeller serve: REST on"))).toStartWith("<6>");
  });

  test("a shell redirect under a unit ($JOURNAL_STREAM for another file) gets no prefix", async () => {
    const s = await serveToFile("other");
    await until("the start-up lines", () => s.lines().some((l) => l.includes("propeller serve: REST on")));
    for (const l of s.lines()) expect(l).not.toMatch(/^<\d>/);
  });
});

describe("JSON logs", () => {
  let s: Serve;
  test("a failed task: a warn line from the manager and one from the proplet, ids as fields", async () => {
    s = await startServe({ extra: ["--log-format", "json"] });
    procs.push(s);
    const t = await runTask(s.url, { name: "fail", file: b64("fail") });
    expect(t.state).toBe(4);
    const lines = () =>
      s
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l));
    const failed = await until("two failure lines", () => {
      const f = lines().filter((o) => o.task_id === t.id && o.message.startsWith("task failed"));
      return f.length >= 2 ? f : undefined;
    });
    for (const o of failed) {
      expect(o).toMatchObject({ level: "warn", task_id: t.id, proplet_id: t.proplet_id });
      expect(typeof o.run_id).toBe("string");
      expect(o.message).not.toContain(t.id);
    }
    expect(failed.map((o) => o.tag).sort()).toEqual(["manager", "proplet"]);
  });

  test("/metrics has process_* metrics and propeller_build_info", async () => {
    const r = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } });
    const families = parsePrometheusTextFormat(await r.text());
    const byName = new Map((families as { name: string }[]).map((f) => [f.name, f]));
    const rss = Number((byName.get("process_resident_memory_bytes") as any).metrics[0].value);
    expect(rss).toBeGreaterThan(10 << 20);
    const value = (name: string) => Number((byName.get(name) as any).metrics[0].value);
    expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(Math.abs(value("process_start_time_seconds") - Date.now() / 1000)).toBeLessThan(120);
    expect(byName.has("process_open_fds")).toBe(true);
    const build = (byName.get("propeller_build_info") as any).metrics[0];
    const pkg = JSON.parse(readFileSync(join(import.meta.dir, "../../package.json"), "utf8"));
    // From source the commit is read from git (a clean clone has it), else "source".
    expect(build).toEqual({
      labels: { version: pkg.version, commit: expect.stringMatching(/^([0-9a-f]{7,40}|source)$/) },
      value: "1",
    });
  });
});
