import { expect, test } from "bun:test";
import { mulberry32 } from "../../../scripts/chaos/prng.ts";
import { decode, MAX_SIGNATURE_CHARS, ResultMsg, StartMsg } from "../../../src/core/messages.ts";
import { plainResult, plainStart } from "../../../src/core/messages-plain.ts";

// The start and result quick checks (messages-plain.ts) may only answer where their schema answers the same, with
// the same keys in the same order: many random payloads of right, wrong, hostile and edge values (bounds on both
// sides, nulls, own "__proto__" keys, unknown keys), each decoded with and without the quick check.

const rnd = mulberry32(31);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
/** An own key "__proto__" (a literal key of that name would set the prototype instead). */
const PROTO = "__proto__";
const HEX = "0123456789abcdef";
const hex = (n: number) => Array.from({ length: n }, () => HEX[int(16)]).join("");

const strs = ["", "a", "t-1", "é𝄞", "x".repeat(64), "x".repeat(65), "2026-12-07T04:00:00.000Z", "a b", "__proto__"];
const runIds = ["", "a", "r-1:2.3_4", "x".repeat(64), "x".repeat(65), "a b", "a\n", "é", "A/B"];
const nums = [0, 1, -1, 0.5, 1e-300, 5e-324, 1e21, 2 ** 31, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1e308];
const hostile = (): unknown =>
  pick<() => unknown>([
    () => null,
    () => pick(strs),
    () => pick(nums),
    () => rnd() < 0.5,
    () => [],
    () => [pick(strs), pick(nums), null],
    () => ({}),
    () =>
      obj([
        ["a", pick(strs)],
        [PROTO, pick(strs)],
      ]),
    () => ({ a: { b: [1, null] } }),
  ])();

/** A plain object whose keys are all own, "__proto__" included (as JSON.parse makes it). */
function obj(entries: [string, unknown][]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries)
    Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

const inputs = () =>
  Array.from({ length: int(4) }, () => (rnd() < 0.9 ? pick<unknown>([...strs, ...nums]) : hostile()));
const stringList = () => Array.from({ length: int(4) }, () => (rnd() < 0.9 ? pick(strs) : hostile()));
const record = () => {
  const e: [string, unknown][] = [];
  for (let i = int(4); i > 0; i--) e.push([rnd() < 0.1 ? PROTO : pick(["A", "PATH", "1", "é"]), stringList()[0]]);
  return obj(e);
};
const digest = () => pick(["sha256:", "sha512:", "SHA256:"]) + pick([hex(64), hex(63), hex(65), hex(64).toUpperCase()]);

/** Each key's likely values: mostly of its own kind, at and past its bounds. */
const START: Record<string, () => unknown> = {
  id: () => pick(strs),
  name: () => pick(strs),
  state: () => pick(nums),
  image_url: () => pick(strs),
  file: () => pick(strs),
  inputs,
  cli_args: stringList,
  env: record,
  daemon: () => rnd() < 0.5,
  latent: () => rnd() < 0.5,
  encrypted: () => rnd() < 0.5,
  broadcast: () => rnd() < 0.5,
  proplet_id: () => pick(strs),
  kbs_resource_path: () => pick(strs),
  hal_storage_path: () => pick(strs),
  monitoring_profile: () => ({ enabled: true }),
  parent_results: () => ({ a: 1 }),
  timeout_s: () => pick(nums),
  max_memory_mb: () => pick(nums),
  traceparent: () => pick(strs),
  run_id: () => pick(runIds),
  attempt: () => pick(nums),
  sent_again: () => pick(strs),
  sent_at: () => pick(strs),
  module_digest: digest,
  module_signature: () => pick(["", "x".repeat(MAX_SIGNATURE_CHARS), "x".repeat(MAX_SIGNATURE_CHARS + 1)]),
  extra: () => pick(strs),
  [PROTO]: () => obj([["polluted", true]]),
};
const COMMON_START = ["id", "name", "state", "file", "inputs", "broadcast", "daemon", "latent", "encrypted"];

const RESULT: Record<string, () => unknown> = {
  task_id: () => pick(strs),
  proplet_id: () => pick(strs),
  run_id: () => pick(runIds),
  results: hostile,
  error: () => (rnd() < 0.5 ? null : pick(strs)),
  extra: () => pick(strs),
  [PROTO]: () => obj([["polluted", true]]),
};

/** A payload's text: each key present with its usual chance, its own kind of value mostly, else a hostile one. */
function payload(gen: Record<string, () => unknown>, usual: (k: string) => number): string {
  const o: [string, unknown][] = [];
  for (const k of Object.keys(gen)) if (rnd() < usual(k)) o.push([k, rnd() < 0.92 ? gen[k]!() : hostile()]);
  return JSON.stringify(obj(o));
}

function holdsToSchema(
  schema: typeof StartMsg | typeof ResultMsg,
  plain: (json: unknown) => object | undefined,
  gen: Record<string, () => unknown>,
  usual: (k: string) => number,
): number {
  let answered = 0;
  for (let i = 0; i < 30_000; i++) {
    const text = payload(gen, usual);
    const quick = plain(JSON.parse(text));
    if (quick === undefined) continue;
    answered++;
    const z = schema.safeParse(JSON.parse(text));
    expect({ text, ok: z.success }).toEqual({ text, ok: true });
    expect(quick).toStrictEqual(z.data!);
    expect(Object.keys(quick)).toEqual(Object.keys(z.data!));
  }
  return answered;
}

test("plainStart answers only as StartMsg does, key for key", () => {
  const answered = holdsToSchema(StartMsg, plainStart, START, (k) =>
    k === "id" || k === "name" ? 0.97 : COMMON_START.includes(k) ? 0.5 : 0.08,
  );
  expect(answered).toBeGreaterThan(1_000);
});

test("plainResult answers only as ResultMsg does, key for key", () => {
  const answered = holdsToSchema(ResultMsg, plainResult, RESULT, (k) =>
    k === "task_id" || k === "results" ? 0.95 : k === "extra" || k === PROTO ? 0.05 : 0.5,
  );
  expect(answered).toBeGreaterThan(5_000);
});

test("decode gives the same answer, accepted or refused, with the quick check as without", () => {
  for (let i = 0; i < 5_000; i++) {
    const s = payload(START, (k) => (k === "id" || k === "name" ? 0.97 : COMMON_START.includes(k) ? 0.5 : 0.08));
    expect(decode(StartMsg, s, undefined, plainStart)).toStrictEqual(decode(StartMsg, s));
    const r = payload(RESULT, (k) => (k === "task_id" || k === "results" ? 0.95 : 0.3));
    expect(decode(ResultMsg, r, undefined, plainResult)).toStrictEqual(decode(ResultMsg, r));
  }
});

test("the usual start and result are answered by the quick checks, with the decoder's own arrays", () => {
  const start = {
    id: "6f1c",
    name: "add",
    state: 0,
    broadcast: false,
    daemon: false,
    latent: false,
    encrypted: false,
    proplet_id: "p-1",
    file: "AGFzbQEAAAA=",
    inputs: ["5", 1],
    cli_args: ["--invoke", "add"],
    env: { A: "b" },
    run_id: "0b9e-4c",
    attempt: 1,
  };
  const got = plainStart(start);
  expect(got).toStrictEqual(StartMsg.parse(start));
  expect(got!.cli_args).not.toBe(start.cli_args);
  expect(got!.env).not.toBe(start.env);
  const result = { task_id: "6f1c", proplet_id: "p-1", run_id: "0b9e-4c", results: "6" };
  expect(plainResult(result)).toStrictEqual(ResultMsg.parse(result));
  expect(plainResult({ task_id: "6f1c" })).toBeUndefined(); // no results: ResultMsg refuses it
});
