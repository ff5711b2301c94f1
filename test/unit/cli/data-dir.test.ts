import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../../../src/cli/args.ts";
import { ownDataDir } from "../../../src/cli/data-dir.ts";

// A data dir under a file (`--data-dir /srv/propeller.db/data`, a typo) was refused with Node's bare
// "ENOTDIR: not a directory, mkdir '…'", not naming the flag.

const root = mkdtempSync(join(tmpdir(), "propeller-data-dir-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

test("a data dir whose parent is a file is refused naming the flag and why, nothing created", () => {
  const file = join(root, "afile");
  writeFileSync(file, "x");
  const dir = join(file, "data");
  let err: unknown;
  try {
    ownDataDir(dir, "--data-dir");
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UsageError);
  expect((err as Error).message).toBe(`--data-dir ${dir} cannot be created: a part of the path is a file`);
  expect(() => ownDataDir(file, "--data-dir")).toThrow(`--data-dir ${file} is not a directory`);
});

test("a missing data dir is still made, 0700", () => {
  const dir = join(root, "a", "b");
  ownDataDir(dir, "--data-dir");
  expect(existsSync(dir)).toBe(true);
});
