import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ReloadableTrust } from "../../../src/proxy/trust-reload.ts";
import { fixture, tempDir } from "../../helpers.ts";

// Two reloads begun one after the other, the first slower to load (an OpenPGP key to parse for another scope):
// the newest one begun is the one in force, whichever finishes last. (Through SIGHUP the loads do not overlap
// today, as loading never yields to the event loop; this keeps a reload that reads files asynchronously from
// letting an older, open file win.)

test("the newest reload begun is the policy in force, whichever load finishes last", async () => {
  const dir = tempDir("trust-order-");
  const GNUPGHOME = join(dir, "gnupg");
  mkdirSync(GNUPGHOME, { mode: 0o700 });
  const env = { ...process.env, GNUPGHOME };
  Bun.spawnSync(
    ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "K <k@example.com>", "default", "default", "never"],
    { env },
  );
  writeFileSync(join(dir, "key.gpg"), Bun.spawnSync(["gpg", "--armor", "--export"], { env }).stdout);
  const slowOpen = join(dir, "open.json");
  writeFileSync(
    slowOpen,
    JSON.stringify({
      default: [{ type: "insecureAcceptAnything" }],
      transports: {
        docker: { "registry.example/app": [{ type: "signedBy", keyType: "GPGKeys", keyPath: "key.gpg" }] },
      },
    }),
  );
  const strict = join(dir, "strict.json");
  writeFileSync(strict, JSON.stringify({ default: [{ type: "reject" }] }));
  const none = join(dir, "none");
  const trust = await ReloadableTrust.load(strict, none);
  const first = trust.reload(slowOpen, none);
  const second = trust.reload(strict, none);
  expect(await Promise.all([first, second])).toEqual([false, true]);
  expect((await trust.inline(fixture("add"))).allowed).toBe(false);
  Bun.spawnSync(["gpgconf", "--kill", "gpg-agent"], { env }); // gpg left its agent running for this home
});
