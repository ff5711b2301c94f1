import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, FIXTURES, type Serve, startServe, tempDir } from "./helpers.ts";
import { type Registry, startRegistry } from "./registry.ts";

// Only trusted code runs (docs/ARCHITECTURE.md, "Trusted code"), checked against Debian's own tools: gpg makes a
// key, skopeo signs what `propeller push` wrote into Debian's docker-registry, serve runs it under a
// containers-policy.json that requires that key; and skopeo accepts what `propeller push --sign-key` signed.

// Each test file starts its own site (startTrustSite in beforeAll): the bindings below are live, set anew by each.
export let dir = "";
export let GNUPGHOME = "";
export let sigDir = "";
export let registriesD = "";
export let registry: Registry;
export let fpr = "";
export let s: Serve;

export function sh(cmd: string[], env: Record<string, string> = {}) {
  const p = Bun.spawnSync(cmd, { env: { ...process.env, GNUPGHOME, ...env } });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

export const skopeo = (...args: string[]) =>
  sh(["skopeo", "--registries.d", registriesD, "--policy", join(dir, "open.json"), ...args]);

export function push(tag: string, file = "add.wasm"): string {
  const r = cli(["push", join(FIXTURES, file), `${registry.host}/app:${tag}`]);
  if (r.code !== 0) throw new Error(r.stderr);
  return /manifest (sha256:[a-f0-9]{64})/.exec(r.stdout)![1]!;
}

/** skopeo signs the image in place (a copy onto itself), writing to the file:// lookaside. */
export function skopeoSign(tag: string): void {
  const ref = `docker://${registry.host}/app:${tag}`;
  skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--sign-by", fpr, ref, ref);
}

export function sigFiles(digest: string): string[] {
  const d = join(sigDir, `app@${digest.replace(":", "=")}`);
  return readdirSync(d).map((f) => join(d, f));
}

/** gpg makes the site's key, Debian's docker-registry starts, serve starts under a policy requiring that key. */
export async function startTrustSite(): Promise<void> {
  dir = tempDir("trust-");
  GNUPGHOME = join(dir, "gnupg");
  sigDir = join(dir, "sigs");
  registriesD = join(dir, "registries.d");
  mkdirSync(GNUPGHOME, { mode: 0o700 });
  sh([
    "gpg",
    "--batch",
    "--passphrase",
    "",
    "--quick-gen-key",
    "Site Signer <signer@example.com>",
    "default",
    "default",
    "never",
  ]);
  fpr = /^fpr:+([0-9A-F]{40}):/m.exec(sh(["gpg", "--with-colons", "--list-keys"]))![1]!;
  writeFileSync(join(dir, "site.gpg"), sh(["gpg", "--armor", "--export", fpr]));
  writeFileSync(
    join(dir, "signer.asc"),
    sh(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys", fpr]),
  );
  registry = await startRegistry();
  mkdirSync(registriesD);
  writeFileSync(join(registriesD, "site.yaml"), `docker:\n  ${registry.host}:\n    lookaside: file://${sigDir}\n`);
  writeFileSync(join(dir, "open.json"), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  const requireKey = { type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "site.gpg") };
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: { docker: { [`${registry.host}/app`]: [requireKey] } },
    }),
  );
  // The registry on the allow-list: a start a rogue manager sends gets its chunks (the proplet must refuse it).
  s = await startServe({
    extra: [
      "--trust-policy",
      join(dir, "policy.json"),
      "--registries-d",
      registriesD,
      "--registry-allow",
      registry.host,
    ],
  });
}

export async function stopTrustSite(): Promise<void> {
  await s?.kill("SIGKILL");
  registry?.proc.kill("SIGKILL");
  Bun.spawnSync(["gpgconf", "--kill", "gpg-agent"], { env: { ...process.env, GNUPGHOME } }); // gpg left it running
}
