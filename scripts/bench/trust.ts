// Trust-policy cost: what the manager's check adds to a start (docs/ARCHITECTURE.md, "Trusted code"). A real
// docker-registry, a module pushed and signed (OpenPGP simple signing, file:// lookaside), then the verifier's
// image and inline checks timed cold (manifest resolved, signature read and verified) and warm (cached by
// digest), as a dispatch asks them; the same for an image under sigstoreSigned (cosign's `.sig` beside the
// manifest, an ECDSA P-256 key), and its cold cost as a ratio to the OpenPGP one. Then end to end, as the dispatch
// benchmark measures it: two real serves in the same run, one with the OpenPGP policy and one without, each running
// the same signed image (and a signed inline module) start → result, sequentially, alternating between them so the
// machine's load falls on both alike; the policy's checks (dispatch, proxy) are warm after a warm-up. Needs
// Debian's docker-registry. Prints one JSON object as the last line, with the difference of the medians.
//
//   bun scripts/bench/trust.ts [--rounds 200] [--samples 300]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as openpgp from "openpgp";
import { generateCosignKeyPair } from "../../src/core/cosign.ts";
import { parseReference, type Reference } from "../../src/core/oci.ts";
import { signSimpleSigning } from "../../src/core/simple-signing.ts";
import { referenceText } from "../../src/core/trust-policy.ts";
import { MODULES } from "../../src/examples/modules.ts";
import { writeCosignSignature } from "../../src/proxy/cosign.ts";
import { RegistryClient } from "../../src/proxy/registry.ts";
import { lookasideWritePath, TrustVerifier } from "../../src/proxy/trust.ts";
import { scriptArgs } from "../args.ts";
import { freePort } from "./lib.ts";
import { endToEnd } from "./trust-e2e.ts";

const { values: opt } = scriptArgs(import.meta.path, {
  options: { rounds: { type: "string", default: "200" }, samples: { type: "string", default: "300" } },
});
const ROUNDS = Number(opt.rounds);
const SAMPLES = Number(opt.samples);
const dir = mkdtempSync(join(tmpdir(), "propeller-trust-"));
const port = await freePort();
writeFileSync(
  join(dir, "reg.yml"),
  `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "reg")}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
);
const registry = Bun.spawn(["docker-registry", "serve", join(dir, "reg.yml")], { stdout: "ignore", stderr: "ignore" });
try {
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.ok) break;
    await Bun.sleep(25);
  }
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: "ecc",
    curve: "curve25519Legacy",
    userIDs: [{ name: "bench", email: "bench@example.com" }],
    format: "armored",
  });
  writeFileSync(join(dir, "key.asc"), publicKey);
  mkdirSync(join(dir, "registries.d"));
  writeFileSync(
    join(dir, "registries.d", "r.yaml"),
    `docker:\n  127.0.0.1:${port}:\n    lookaside: file://${join(dir, "sigs")}\n`,
  );
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "key.asc") }] }),
  );
  const refText = `127.0.0.1:${port}/bench/add:v1`;
  const module = new Uint8Array(Buffer.from(MODULES.add.wasm, "base64"));
  const client = new RegistryClient({});
  const pushed = await client.push(refText, module);
  const ref = parseReference(refText) as Reference;
  const path = lookasideWritePath(join(dir, "registries.d"), ref, pushed.manifestDigest);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, (await signSimpleSigning(privateKey, referenceText(ref), pushed.manifestDigest)).signature);
  const inlineSig = (
    await signSimpleSigning(
      privateKey,
      "inline/add:v1",
      `sha256:${new Bun.CryptoHasher("sha256").update(module).digest("hex")}`,
    )
  ).signature;

  // cosign: another image, signed beside its manifest, judged by a sigstoreSigned policy.
  const cosignKey = generateCosignKeyPair();
  writeFileSync(join(dir, "cosign.pub"), cosignKey.publicPem);
  writeFileSync(
    join(dir, "cosign.json"),
    JSON.stringify({ default: [{ type: "sigstoreSigned", keyPath: "cosign.pub" }] }),
  );
  const cosignRef = `127.0.0.1:${port}/bench/cosign:v1`;
  const cosignPushed = await client.push(cosignRef, module);
  const cref = parseReference(cosignRef) as Reference;
  await writeCosignSignature(client, cref, referenceText(cref), cosignPushed.manifestDigest, cosignKey.privatePem);

  const time = async (fn: () => Promise<{ allowed: boolean }>) => {
    const t0 = performance.now();
    const r = await fn();
    if (!r.allowed) throw new Error("refused");
    return performance.now() - t0;
  };
  const p50 = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const p99 = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;
  const cold: number[] = [];
  const coldInline: number[] = [];
  for (let i = 0; i < 10; i++) {
    // A fresh verifier each round: nothing cached (the registry client's own tag cache is fresh too).
    const v = await TrustVerifier.load(join(dir, "policy.json"), join(dir, "registries.d"), new RegistryClient({}));
    cold.push(await time(() => v.image(refText)));
    coldInline.push(await time(() => v.inline(module, inlineSig)));
  }
  const coldCosign: number[] = [];
  for (let i = 0; i < 10; i++) {
    const c = await TrustVerifier.load(join(dir, "cosign.json"), join(dir, "registries.d"), new RegistryClient({}));
    coldCosign.push(await time(() => c.image(cosignRef)));
  }
  const c = await TrustVerifier.load(join(dir, "cosign.json"), join(dir, "registries.d"), new RegistryClient({}));
  await c.image(cosignRef);
  const warmCosign: number[] = [];
  for (let i = 0; i < ROUNDS; i++) warmCosign.push(await time(() => c.image(cosignRef)));
  const v = await TrustVerifier.load(join(dir, "policy.json"), join(dir, "registries.d"), new RegistryClient({}));
  await v.image(refText);
  await v.inline(module, inlineSig);
  const warm: number[] = [];
  const warmInline: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    warm.push(await time(() => v.image(refText)));
    warmInline.push(await time(() => v.inline(module, inlineSig)));
  }
  const ms = (x: number) => Math.round(x * 1000) / 1000;
  const e2e = await endToEnd({
    dir,
    image: refText,
    file: MODULES.add.wasm,
    signature: Buffer.from(inlineSig).toString("base64"),
    policyArgs: ["--trust-policy", join(dir, "policy.json"), "--registries-d", join(dir, "registries.d")],
    samples: SAMPLES,
  });
  console.log(
    JSON.stringify({
      ...e2e,
      image_cold_ms_p50: ms(p50(cold)),
      inline_cold_ms_p50: ms(p50(coldInline)),
      image_warm_ms_p50: ms(p50(warm)),
      image_warm_ms_p99: ms(p99(warm)),
      inline_warm_ms_p50: ms(p50(warmInline)),
      inline_warm_ms_p99: ms(p99(warmInline)),
      cosign_image_cold_ms_p50: ms(p50(coldCosign)),
      cosign_image_warm_ms_p50: ms(p50(warmCosign)),
      cosign_image_warm_ms_p99: ms(p99(warmCosign)),
      cosign_cold_vs_openpgp_cold: Math.round((p50(coldCosign) / p50(cold)) * 100) / 100,
      rounds: ROUNDS,
    }),
  );
} finally {
  registry.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
