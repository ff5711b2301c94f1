import { fixture, MAIN, type Serve, startServe } from "./helpers.ts";
import { type Registry, startRegistry } from "./registry.ts";

// The Wasm distribution e2e's site (test/e2e/distribution.test.ts, distribution-fetch.test.ts): Debian's
// docker-registry, started on free ports, one open and one behind htpasswd basic auth, and a serve holding the
// locked one's credentials; the CLI as a process, and a module of any size.
// Each test file starts its own site (startDistributionSite in beforeAll): the bindings below are live, set anew.

/** For tests that serve HTTP from this process: a synchronous spawn would block the answer. */
export async function cliAsync(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([process.execPath, MAIN, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { exitCode, stdout, stderr };
}

export function cli(args: string[], env: Record<string, string> = {}) {
  return Bun.spawnSync([process.execPath, MAIN, ...args], { env: { ...process.env, ...env } });
}

/** A module of about `size` bytes: add.wasm plus a custom section of random bytes. */
export function bigModule(size: number): Uint8Array {
  const add = fixture("add");
  const payload = crypto.getRandomValues(new Uint8Array(size));
  const name = new TextEncoder().encode("pad");
  const body = new Uint8Array([name.length, ...name, ...payload]);
  const leb: number[] = [];
  for (let n = body.length; ; ) {
    const b = n & 0x7f;
    n >>>= 7;
    if (n) leb.push(b | 0x80);
    else {
      leb.push(b);
      break;
    }
  }
  const out = new Uint8Array(add.length + 1 + leb.length + body.length);
  out.set(add);
  out.set([0, ...leb], add.length);
  out.set(body, add.length + 1 + leb.length);
  return out;
}

export let open: Registry;
export let locked: Registry;
export let s: Serve;
export const creds = { PROPELLER_REGISTRY_USERNAME: "alice", PROPELLER_REGISTRY_PASSWORD: "s3cret" };

export async function startDistributionSite(): Promise<void> {
  open = await startRegistry();
  locked = await startRegistry({ user: "alice", password: "s3cret" });
  // The credentials are for the locked registry alone (they go to no other host).
  s = await startServe({ env: { ...creds, PROPELLER_REGISTRY_AUTH_HOSTS: locked.host } });
}

export async function stopDistributionSite(): Promise<void> {
  await s?.kill("SIGKILL");
  open?.proc.kill("SIGKILL");
  locked?.proc.kill("SIGKILL");
}
