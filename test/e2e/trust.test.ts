import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, FIXTURES, http, runTask, spawnProplet, startServe, tempDir, until, untilAlive } from "../helpers.ts";
import {
  dir,
  fpr,
  GNUPGHOME,
  push,
  registriesD,
  registry,
  s,
  sh,
  sigDir,
  sigFiles,
  skopeo,
  skopeoSign,
  startTrustSite,
  stopTrustSite,
} from "../trust-site.ts";

// Only trusted code runs (docs/ARCHITECTURE.md, "Trusted code"), checked against Debian's own tools: gpg makes a
// key, skopeo signs what `propeller push` wrote into Debian's docker-registry, serve runs it under a
// containers-policy.json that requires that key; and skopeo accepts what `propeller push --sign-key` signed.
// Inline modules, bad policies, groups and encrypted modules: trust-groups.test.ts.

beforeAll(startTrustSite);
afterAll(stopTrustSite);

describe("skopeo signs, propeller runs", () => {
  test("an image skopeo signed with the site's key runs under a policy requiring that key", async () => {
    push("signed");
    skopeoSign("signed");
    const t = await runTask(s.url, { name: "add", image_url: `${registry.host}/app:signed`, inputs: [10, 20] }, 20_000);
    expect(t).toMatchObject({ state: 3, results: "30" });
    const v = cli([
      "verify",
      `${registry.host}/app:signed`,
      "--trust-policy",
      join(dir, "policy.json"),
      "--registries-d",
      registriesD,
    ]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(`accepted: ${registry.host}/app is signed as scope ${registry.host}/app requires`);
  });

  test("unsigned, tampered and wrongly named images are refused with the rule and scope named", async () => {
    push("unsigned", "fib.wasm");
    // The audit trail: the live stream tells of each refusal.
    const stream = await fetch(`${s.url}/events?types=trust`, { headers: { authorization: `Bearer ${s.token}` } });
    const reader = stream.body!.getReader();
    const unsigned = await http(`${s.url}/tasks`, "POST", { name: "u", image_url: `${registry.host}/app:unsigned` });
    let seen = "";
    while (!seen.includes("none found")) seen += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(seen).toContain('"type":"trust","at_step":"create"');
    expect(seen).toContain('"rule":"signedBy"');
    expect(unsigned.status).toBe(400);
    expect(unsigned.body.error).toBe(
      `image_url: ${registry.host}/app requires a signature by key ${fpr.slice(0, 4)}…${fpr.slice(-4)} (scope ${registry.host}/app); none found`,
    );

    const tamperedDigest = push("tampered", "main-only.wasm");
    skopeoSign("tampered");
    for (const f of sigFiles(tamperedDigest)) {
      const b = readFileSync(f);
      b[b.length - 10]! ^= 0xff;
      writeFileSync(f, b);
    }
    const tampered = await http(`${s.url}/tasks`, "POST", { name: "t", image_url: `${registry.host}/app:tampered` });
    expect(tampered.status).toBe(400);
    expect(tampered.body.error).toContain("requires a signature by key");
    // Why the signature there did not count is said (a flipped byte breaks its packets or its check, whichever it
    // lands in; an expired key's says when it expired).
    expect(tampered.body.error).toMatch(
      /\(a signature there was refused: (not an OpenPGP message|signature not verified by a trusted key)/,
    );

    // A good signature by the right key, but naming another image: matchRepoDigestOrExact refuses it.
    const wrongDigest = push("wrongid", "count.wasm");
    writeFileSync(
      join(dir, "manifest.json"),
      skopeo("inspect", "--tls-verify=false", "--raw", `docker://${registry.host}/app:wrongid`),
    );
    const out = join(sigDir, `app@${wrongDigest.replace(":", "=")}`);
    mkdirSync(out, { recursive: true });
    sh([
      "skopeo",
      "standalone-sign",
      join(dir, "manifest.json"),
      `${registry.host}/other:wrongid`,
      fpr,
      "-o",
      join(out, "signature-1"),
    ]);
    const wrong = await http(`${s.url}/tasks`, "POST", { name: "w", image_url: `${registry.host}/app:wrongid` });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toContain(
      `names ${registry.host}/other:wrongid, which matchRepoDigestOrExact does not accept`,
    );

    // Another repository falls to the default: reject.
    const other = await http(`${s.url}/tasks`, "POST", { name: "o", image_url: `${registry.host}/elsewhere:v1` });
    expect(other.status).toBe(400);
    expect(other.body.error).toContain("is rejected (scope default)");
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).text();
    expect(metrics).toMatch(/propeller_trust_refusals_total\{rule="signedBy"\} [3-9]/);
  });

  test("a task created before the policy fails at dispatch with the policy's reason", async () => {
    push("before", "cat.wasm");
    const dataDir = tempDir();
    const open = await startServe({ dataDir, extra: ["--trust-policy", join(dir, "open.json")] });
    const c = await http(`${open.url}/tasks`, "POST", { name: "add", image_url: `${registry.host}/app:before` });
    expect(c.status).toBe(201);
    await open.kill("SIGTERM");
    const strict = await startServe({
      dataDir,
      ports: { http: open.httpPort, mqtt: open.mqttPort },
      extra: ["--trust-policy", join(dir, "policy.json"), "--registries-d", registriesD],
    });
    try {
      await http(`${strict.url}/tasks/${c.body.id}/start`, "POST");
      const t = await until("the task to fail", async () => {
        const x = (await http(`${strict.url}/tasks/${c.body.id}`)).body;
        return x.state >= 3 ? x : undefined;
      });
      expect(t.status).toBe("Failed");
      expect(t.error).toBe(
        `${registry.host}/app requires a signature by key ${fpr.slice(0, 4)}…${fpr.slice(-4)} (scope ${registry.host}/app); none found`,
      );
    } finally {
      await strict.kill("SIGKILL");
    }
  });
});

describe("propeller signs, skopeo verifies", () => {
  test("push --sign-key writes a simple signature that skopeo's policy accepts", async () => {
    const r = cli([
      "push",
      join(FIXTURES, "add.wasm"),
      `${registry.host}/app:ours`,
      "--sign-key",
      join(dir, "signer.asc"),
      "--registries-d",
      registriesD,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`signed by ${fpr}`);
    const requireKey = { type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "site.gpg") };
    writeFileSync(join(dir, "skopeo-policy.json"), JSON.stringify({ default: [requireKey] }));
    const copy = (tag: string) =>
      Bun.spawnSync(
        [
          "skopeo",
          "--registries.d",
          registriesD,
          "--policy",
          join(dir, "skopeo-policy.json"),
          "copy",
          "--src-tls-verify=false",
          `docker://${registry.host}/app:${tag}`,
          `dir:${tempDir("copy-")}`,
        ],
        { env: { ...process.env, GNUPGHOME } },
      );
    const ok = copy("ours");
    expect(ok.stderr.toString()).not.toContain("rror");
    expect(ok.exitCode).toBe(0);
    // And propeller runs it too.
    const t = await runTask(s.url, { name: "add", image_url: `${registry.host}/app:ours`, inputs: [2, 3] }, 20_000);
    expect(t).toMatchObject({ state: 3, results: "5" });
    // An unsigned image is refused by skopeo as by propeller.
    const bad = copy("unsigned");
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr.toString()).toContain("signature");
  });
});

describe("a proplet's own policy", () => {
  test("PROPLET_TRUST_POLICY refuses an unsigned image a manager without a policy sends it, and runs a signed one", async () => {
    const plain = await startServe();
    const p = await spawnProplet(plain, "strict", {
      PROPLET_TRUST_POLICY: join(dir, "policy.json"),
      PROPLET_REGISTRIES_D: registriesD,
    });
    try {
      await untilAlive(plain.url, "strict");
      const bad = await runTask(
        plain.url,
        { name: "add", image_url: `${registry.host}/app:unsigned`, proplet_id: "strict" },
        20_000,
      );
      expect(bad.status).toBe("Failed");
      expect(bad.error).toBe(
        `refused by this proplet's trust policy: ${registry.host}/app requires a signature by key ${fpr.slice(0, 4)}…${fpr.slice(-4)} (scope ${registry.host}/app); none found`,
      );
      const good = await runTask(
        plain.url,
        { name: "add", image_url: `${registry.host}/app:signed`, proplet_id: "strict", inputs: [5, 6] },
        20_000,
      );
      expect(good).toMatchObject({ state: 3, results: "11" });
    } finally {
      await p.kill("SIGKILL");
      await plain.kill("SIGKILL");
    }
  });
});

describe("a signed image's task given other bytes", () => {
  test("tasks update --file and tasks upload are judged by the bytes that would run, not by the image (400)", async () => {
    push("swap-base", "sandbox.wasm");
    skopeoSign("swap-base");
    const made = await http(`${s.url}/tasks`, "POST", { name: "add", image_url: `${registry.host}/app:swap-base` });
    expect(made.status).toBe(201);
    const unsigned = readFileSync(join(FIXTURES, "spin.wasm")).toString("base64");
    const stream = await fetch(`${s.url}/events?types=trust`, { headers: { authorization: `Bearer ${s.token}` } });
    const reader = stream.body!.getReader();
    const put = await http(`${s.url}/tasks/${made.body.id}`, "PUT", { file: unsigned });
    expect(put.status).toBe(400);
    expect(put.body.error).toStartWith("file: ");
    // The audit trail names the step (a change of the module, not a creation) and the task.
    let seen = "";
    while (!seen.includes('"type":"trust"')) seen += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(seen).toContain(`"type":"trust","at_step":"update","task_id":"${made.body.id}"`);
    const form = new FormData();
    form.append("file", new File([readFileSync(join(FIXTURES, "spin.wasm"))], "spin.wasm"));
    const up = await fetch(`${s.url}/tasks/${made.body.id}/upload`, {
      method: "PUT",
      headers: { authorization: `Bearer ${s.token}` },
      body: form,
    });
    expect(up.status).toBe(400);
    expect(((await up.json()) as { error: string }).error).toStartWith("file: ");
    // The task is as it was: its signed image, no file.
    const t = (await http(`${s.url}/tasks/${made.body.id}`)).body;
    expect(t.file ?? "").toBe("");
    expect(t.image_url).toBe(`${registry.host}/app:swap-base`);
  });
});

describe("a hostile lookaside (whoever can write it: a signer, a CI job)", () => {
  test("a FIFO, /dev/zero and a 2 GiB file as signature-1 are refused as no signature; serve answers meanwhile", async () => {
    // Each its own module: one digest, one signature directory.
    const cases: [string, string, (f: string) => void][] = [
      ["fifo", "grow.wasm", (f) => sh(["mkfifo", f])],
      ["zero", "fail.wasm", (f) => symlinkSync("/dev/zero", f)],
      ["huge", "spin.wasm", (f) => sh(["truncate", "-s", "2G", f])],
    ];
    for (const [tag, file, make] of cases) {
      const digest = push(`hostile-${tag}`, file);
      const d = join(sigDir, `app@${digest.replace(":", "=")}`);
      mkdirSync(d, { recursive: true });
      make(join(d, "signature-1"));
      const before = rssOf(s.proc.pid);
      const t0 = performance.now();
      const r = await http(`${s.url}/tasks`, "POST", { name: "h", image_url: `${registry.host}/app:hostile-${tag}` });
      expect({ tag, status: r.status }).toEqual({ tag, status: 400 });
      expect(r.body.error).toContain("none found");
      expect(performance.now() - t0).toBeLessThan(5000);
      expect((await fetch(`${s.url}/livez`)).status).toBe(200);
      expect(rssOf(s.proc.pid) - before).toBeLessThan(100 * 2 ** 20);
      // The CLI's own check reads it the same way.
      const v = cli([
        "verify",
        `${registry.host}/app:hostile-${tag}`,
        "--trust-policy",
        join(dir, "policy.json"),
        "--registries-d",
        registriesD,
      ]);
      expect(v.code).toBe(1);
    }
  }, 60_000);
});

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) * 1024;
}
