// Distribution benchmark: a 10 MiB module pushed to a real docker-registry, then one task per proplet started
// at once on 4 proplet processes; each must fetch the module over MQTT chunks from serve's OCI proxy. The clock
// runs from the starts until all 4 tasks completed. Aggregate MB/s = 4 × module size / seconds.
// Needs Debian's docker-registry. Prints one JSON object as the last stdout line.
//
//   bun scripts/bench/distribution.ts [--mib 10] [--proplets 4] [--rounds 3]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MODULES } from "../../src/examples/modules.ts";
import { RegistryClient } from "../../src/proxy/registry.ts";
import { scriptArgs } from "../args.ts";
import { adminToken, authHeaders, freePort, mqttLogin, serveArgs } from "./lib.ts";

const { values: opt } = scriptArgs(import.meta.path, {
  options: {
    mib: { type: "string", default: "10" },
    proplets: { type: "string", default: "4" },
    rounds: { type: "string", default: "3" },
  },
});
const MIB = Number(opt.mib);
const N = Number(opt.proplets);
const ROUNDS = Number(opt.rounds);
const root = join(import.meta.dir, "..", "..");
const main = join(root, "src/main.ts");
const say = (s: string) => process.stderr.write(`${s}\n`);

async function until(fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(20)) if (await fn().catch(() => false)) return;
  throw new Error("timed out");
}

const dir = mkdtempSync(join(tmpdir(), "propeller-dist-"));
const regPort = await freePort();
writeFileSync(
  join(dir, "reg.yml"),
  `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "reg")}\nhttp:\n  addr: 127.0.0.1:${regPort}\n`,
);
const registry = Bun.spawn(["docker-registry", "serve", join(dir, "reg.yml")], { stdout: "ignore", stderr: "inherit" });
await until(async () => (await fetch(`http://127.0.0.1:${regPort}/v2/`)).ok);

// add.wasm plus a custom section of random bytes, so the module is MIB MiB and still runs `add`.
const add = new Uint8Array(Buffer.from(MODULES.add.wasm, "base64"));
function makeModule(): Uint8Array {
  const pad = new Uint8Array(MIB * 1048576 - add.length - 16);
  for (let o = 0; o < pad.length; o += 65536) crypto.getRandomValues(pad.subarray(o, o + 65536));
  const name = new TextEncoder().encode("pad");
  const leb: number[] = [];
  for (let n = 1 + name.length + pad.length; ; ) {
    const b = n & 0x7f;
    n >>>= 7;
    leb.push(n ? b | 0x80 : b);
    if (!n) break;
  }
  return Buffer.concat([add, Uint8Array.of(0, ...leb, name.length), name, pad]);
}

const httpPort = await freePort();
const mqttPort = await freePort();
const serve = Bun.spawn(
  [process.execPath, main, ...serveArgs(httpPort, mqttPort, join(dir, "data"), ["--no-local-proplet"])],
  { stdout: "inherit", stderr: "inherit" },
);
const url = `http://127.0.0.1:${httpPort}`;
await until(async () => (await fetch(`${url}/health`)).ok);
const token = adminToken(join(dir, "data"));
const headers = authHeaders(token);
const proplets: ReturnType<typeof Bun.spawn>[] = [];
for (let i = 0; i < N; i++) {
  const login = await mqttLogin(url, token, "proplet", `dist-${i}`);
  const env = { PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${mqttPort}`, PROPLET_ENTITY_ID: `dist-${i}` };
  proplets.push(
    Bun.spawn([process.execPath, main, "proplet", "--log-level", "warn"], {
      env: { ...process.env, ...env, PROPLET_API_KEY: login.password ?? "" },
      stdout: "inherit",
      stderr: "inherit",
    }),
  );
}
await until(
  async () =>
    ((await (await fetch(`${url}/proplets?status=active`, { headers })).json()) as { total: number }).total === N,
);

const post = async (path: string, b?: unknown) =>
  (await (
    await fetch(`${url}${path}`, {
      method: "POST",
      headers: b ? { ...headers, "content-type": "application/json" } : headers,
      ...(b ? { body: JSON.stringify(b) } : {}),
    })
  ).json()) as { id: string };

const figures: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  // A new module each round: the proxy fetches it from the registry (no cache hit) and every proplet needs it.
  const ref = `127.0.0.1:${regPort}/bench/big:r${r}`;
  const module = makeModule();
  await new RegistryClient().push(ref, module);
  const ids = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      post("/tasks", { name: "add", image_url: ref, inputs: [i, 1], proplet_id: `dist-${i}` }),
    ),
  );
  const t0 = performance.now();
  await Promise.all(ids.map((t) => post(`/tasks/${t.id}/start`)));
  await until(async () => {
    const states = await Promise.all(
      ids.map(
        async (t) =>
          (await (await fetch(`${url}/tasks/${t.id}`, { headers })).json()) as { state: number; error?: string },
      ),
    );
    const failed = states.find((s) => s.state === 4);
    if (failed) throw new Error(`a task failed: ${failed.error}`);
    return states.every((s) => s.state === 3);
  }, 120_000);
  const seconds = (performance.now() - t0) / 1000;
  const mbps = (N * module.length) / 1e6 / seconds;
  figures.push(mbps);
  say(
    `round ${r + 1}: ${N} × ${(module.length / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${mbps.toFixed(1)} MB/s`,
  );
}

for (const p of proplets) p.kill("SIGKILL");
serve.kill("SIGKILL");
registry.kill("SIGKILL");
rmSync(dir, { recursive: true, force: true });
figures.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    module_mb: +((MIB * 1048576) / 1e6).toFixed(2),
    proplets: N,
    rounds: ROUNDS,
    mb_per_s: +figures[Math.floor(figures.length / 2)]!.toFixed(1),
    mb_per_s_rounds: figures.map((f) => +f.toFixed(1)),
  }),
);
