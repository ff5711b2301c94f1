import { expect, test } from "bun:test";
import { OutputTap, PARTIAL_MS, QUIET_MS, type Stream } from "../../../src/proplet/runtime/output.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

function tap(limit = 1 << 20) {
  const got: [Stream, string][] = [];
  return { got, t: new OutputTap((s, d) => got.push([s, d]), limit) };
}

test("a run that ends while quiet passes nothing on: its result carries the output", () => {
  const { got, t } = tap();
  t.write("stdout", bytes("hello\n"));
  t.end();
  expect(got).toEqual([]);
});

test("after the quiet start, whole lines go out; an unfinished line waits for its end, or for PARTIAL_MS", async () => {
  const { got, t } = tap();
  t.write("stdout", bytes("one\ntw"));
  await Bun.sleep(QUIET_MS + 20);
  t.tick();
  expect(got).toEqual([["stdout", "one\n"]]);
  t.write("stdout", bytes("o\n"));
  await Bun.sleep(110);
  t.tick();
  expect(got.at(-1)).toEqual(["stdout", "two\n"]);
  t.write("stderr", bytes("no newline"));
  t.tick();
  expect(got.length).toBe(2);
  await Bun.sleep(PARTIAL_MS + 20);
  t.tick();
  expect(got.at(-1)).toEqual(["stderr", "no newline"]);
  t.write("stdout", bytes("tail"));
  t.end();
  expect(got.at(-1)).toEqual(["stdout", "tail"]);
});

test("UTF-8 split across writes is decoded whole; output past the limit is cut and marked once", async () => {
  const { got, t } = tap(8);
  const e = bytes("é\n");
  t.write("stdout", e.subarray(0, 1));
  t.write("stdout", e.subarray(1));
  t.write("stdout", bytes("abcdefghij"));
  t.write("stdout", bytes("more"));
  await Bun.sleep(QUIET_MS + 20);
  t.tick();
  t.end();
  expect(got.map(([, d]) => d).join("")).toBe("é\nabcde\n[output truncated]");
});
