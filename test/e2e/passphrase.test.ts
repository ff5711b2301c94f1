import { expect, test } from "bun:test";
import { createPrivateKey } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, freePort, MAIN, tempDir, until } from "../helpers.ts";

// A signing key's passphrase typed on a terminal, as cosign asks for one: `keys create` asks twice and encrypts
// with it, `push --sign-key` asks for an encrypted key's; nothing typed is echoed. util-linux's `script` gives the
// CLI a real pseudo-terminal; the test types only once the question is on screen (typed earlier, the terminal
// would still be in its echoing mode).

function onTerminal(args: string[]) {
  const line = [process.execPath, MAIN, ...args].map((a) => `'${a}'`).join(" ");
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  delete env.PROPELLER_KEY_PASSPHRASE;
  const p = Bun.spawn(["script", "-qefc", line, "/dev/null"], { stdin: "pipe", stdout: "pipe", env });
  let screen = "";
  void (async () => {
    for await (const chunk of p.stdout) screen += new TextDecoder().decode(chunk);
  })();
  return {
    screen: () => screen,
    /** Waits for `question` to be shown (the n-th time), then types `answer` and Enter. */
    async answer(question: string, answer: string, nth = 1) {
      await until(`"${question}" on the terminal`, () => screen.split(question).length > nth, 15_000);
      p.stdin.write(`${answer}\r`);
      await p.stdin.flush();
    },
    exited: p.exited,
  };
}

test("keys create asks for a passphrase twice on a terminal, without echo, and encrypts the key with it", async () => {
  const dir = tempDir("pass-");
  const t = onTerminal(["keys", "create", "--output-key-prefix", join(dir, "site")]);
  await t.answer("passphrase for", "correct horse");
  await t.answer("the same again", "correct horse");
  expect(await t.exited).toBe(0);
  expect(t.screen()).not.toContain("correct horse");
  const pem = readFileSync(join(dir, "site.key"), "utf8");
  expect(pem).toStartWith("-----BEGIN ENCRYPTED PRIVATE KEY-----");
  expect(createPrivateKey({ key: pem, passphrase: "correct horse" }).asymmetricKeyType).toBe("ec");

  // Two different answers: nothing written.
  const u = onTerminal(["keys", "create", "--output-key-prefix", join(dir, "typo")]);
  await u.answer("passphrase for", "one");
  await u.answer("the same again", "two");
  expect(await u.exited).not.toBe(0);
  expect(u.screen()).toContain("the two passphrases differ: nothing written");
  expect(existsSync(join(dir, "typo.key"))).toBe(false);

  // push --sign-key asks for the encrypted key's passphrase before pushing: a wrong one stops it there.
  const registry = `127.0.0.1:${await freePort()}`; // nothing listens: a right passphrase gets as far as the push
  const file = join(FIXTURES, "add.wasm");
  const wrong = onTerminal(["push", file, `${registry}/app:v1`, "--sign-key", join(dir, "site.key")]);
  await wrong.answer("passphrase for", "battery staple");
  expect(await wrong.exited).not.toBe(0);
  expect(wrong.screen()).toContain("wrong passphrase for the key");
  const right = onTerminal(["push", file, `${registry}/app:v1`, "--sign-key", join(dir, "site.key")]);
  await right.answer("passphrase for", "correct horse");
  expect(await right.exited).not.toBe(0);
  expect(right.screen()).not.toContain("passphrase for the key");
  expect(right.screen()).not.toContain("correct horse");
  expect(right.screen()).toContain(registry);
});
