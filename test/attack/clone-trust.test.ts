import { afterAll, beforeAll, expect, test } from "bun:test";
import { generateKeyPairSync, sign } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, http, type Serve, startServe, tempDir } from "../helpers.ts";

// Copying a task (POST /tasks/{id}/clone) under a trust policy that runs only signed code: the copy is judged as
// a new task is. An admin copies a signed task and swaps its module for an unsigned one, lends the original's
// signature to another module, or drops the signature with `unset`: each copy is refused naming the field, and
// nothing is created.

const dir = tempDir("clone-trust-");
let s: Serve;
const add = readFileSync(join(FIXTURES, "add.wasm"));
const fib = readFileSync(join(FIXTURES, "fib.wasm"));

beforeAll(async () => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  writeFileSync(join(dir, "cosign.pub"), publicKey.export({ type: "spki", format: "pem" }));
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({ default: [{ type: "sigstoreSigned", keyPath: "cosign.pub" }] }),
  );
  // As `cosign sign-blob --key` signs a module: base64 of the DER ECDSA signature over its bytes.
  writeFileSync(join(dir, "add.sig"), sign("sha256", add, { key: privateKey, dsaEncoding: "der" }).toString("base64"));
  s = await startServe({
    extra: ["--trust-policy", join(dir, "policy.json"), "--registries-d", join(dir, "none")],
  });
}, 30_000);

afterAll(async () => {
  await s?.kill("SIGKILL");
});

test("a copy of a signed task cannot carry an unsigned module or a signature lent to it", async () => {
  const signature = Buffer.from(readFileSync(join(dir, "add.sig"))).toString("base64");
  const original = await http(`${s.url}/tasks`, "POST", {
    name: "add",
    file: add.toString("base64"),
    signature,
    inputs: [1, 2],
  });
  expect(original.status).toBe(201);
  const before = (await http(`${s.url}/tasks`)).body.total;
  // A plain copy of signed code is fine.
  const copy = await http(`${s.url}/tasks/${original.body.id}/clone`, "POST", { name: "copy" });
  expect(copy.status).toBe(201);
  // Another module: the original's signature does not go with it.
  const swapped = await http(`${s.url}/tasks/${original.body.id}/clone`, "POST", { file: fib.toString("base64") });
  expect(swapped.status).toBe(400);
  expect(swapped.body.error).toContain("file: an inline module requires a signature by key");
  // Another module with the original's signature given again: it does not cover these bytes.
  const lent = await http(`${s.url}/tasks/${original.body.id}/clone`, "POST", {
    file: fib.toString("base64"),
    signature,
  });
  expect(lent.status).toBe(400);
  expect(lent.body.error).toContain("file: an inline module");
  // The signature left out.
  const unsigned = await http(`${s.url}/tasks/${original.body.id}/clone`, "POST", { unset: ["signature"] });
  expect(unsigned.status).toBe(400);
  expect(unsigned.body.error).toContain("requires a signature");
  expect((await http(`${s.url}/tasks`)).body.total).toBe(before + 1);
  expect((await http(`${s.url}/health`)).status).toBe(200);
});
