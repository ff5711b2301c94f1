import { describe, expect, test } from "bun:test";
import { linkSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Directory, File } from "@bjorn3/browser_wasi_shim";
import { loadPreopen, savePreopen } from "../../../../src/proplet/runtime/preopen.ts";
import { tempDir } from "../../../helpers.ts";

// A preopen's load and write-back on real directories, with the host's tree changed between the two, as a task
// that runs for a while would see it (test/attack/sandbox-files.test.ts does the same against a running proplet).

const budget = () => ({ left: 1 << 20 });
const text = (s: string) => new File(new TextEncoder().encode(s));

describe("preopened directories", () => {
  test("load skips links, even those that stay inside; a hard-linked file refuses the load", () => {
    const dir = tempDir();
    const outside = tempDir();
    writeFileSync(join(dir, "a.txt"), "a");
    symlinkSync(join(dir, "a.txt"), join(dir, "alias.txt"));
    symlinkSync(outside, join(dir, "out"));
    const p = loadPreopen(dir, budget());
    expect([...p.tree.keys()]).toEqual(["a.txt"]);
    writeFileSync(join(outside, "secret"), "s");
    linkSync(join(outside, "secret"), join(dir, "hard"));
    expect(() => loadPreopen(dir, budget())).toThrow("has 2 hard links");
  });

  test("a root given through a link is refused: the path checked is the path opened", () => {
    const dir = tempDir();
    symlinkSync(dir, `${dir}-alias`);
    expect(() => loadPreopen(`${dir}-alias`, budget())).toThrow("symbolic link");
  });

  test("write-back: a root swapped for a link writes nothing; a sub-directory swapped is skipped", () => {
    const dir = tempDir();
    const target = tempDir();
    mkdirSync(join(dir, "sub"));
    const p = loadPreopen(dir, budget());
    const tree = new Directory([
      ["new.txt", text("n")],
      ["sub", new Directory([["x.txt", text("x")]])],
    ]);
    renameSync(join(dir, "sub"), join(dir, "sub.away"));
    symlinkSync(target, join(dir, "sub"));
    expect(savePreopen(p, tree, { left: 1 << 20 })).toEqual([]);
    expect(readFileSync(join(dir, "new.txt"), "utf8")).toBe("n");
    expect(readdirSync(target)).toEqual([]);

    renameSync(dir, `${dir}.away`);
    symlinkSync(target, dir);
    expect(savePreopen(p, tree, { left: 1 << 20 })[0]).toContain("is a symbolic link");
    expect(readdirSync(target)).toEqual([]);
  });

  test("write-back: a file hard-linked after the load is not written; a root replaced by another directory neither", () => {
    const dir = tempDir();
    const outside = tempDir();
    writeFileSync(join(dir, "f.txt"), "old");
    const p = loadPreopen(dir, budget());
    linkSync(join(dir, "f.txt"), join(outside, "other-name"));
    const refused = savePreopen(p, new Directory([["f.txt", text("new")]]), { left: 1 << 20 });
    expect(refused[0]).toContain("f.txt has 2 hard links");
    expect(readFileSync(join(outside, "other-name"), "utf8")).toBe("old");

    renameSync(dir, `${dir}.old`);
    mkdirSync(dir);
    expect(savePreopen(p, new Directory([["g.txt", text("g")]]), { left: 1 << 20 })[0]).toContain(
      "was replaced while the task ran",
    );
    expect(readdirSync(dir)).toEqual([]);
  });
  test("write-back: runs that only added to a file, at once, each keep their lines; a rewrite replaces it", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "ledger.txt"), "0\n");
    // Four runs load the same file, each appends a line, and each writes back: all four lines stay (a whole-file
    // write-back kept one, and an exactly-once count read one execution where there were four).
    const runs = [1, 2, 3, 4].map(() => loadPreopen(dir, budget()));
    runs.forEach((p, i) => {
      expect(savePreopen(p, new Directory([["ledger.txt", text(`0\n${i + 1}\n`)]]), budget())).toEqual([]);
    });
    expect(readFileSync(join(dir, "ledger.txt"), "utf8")).toBe("0\n1\n2\n3\n4\n");
    // A file two runs both made: the second adds to the first's.
    const [a, b] = [loadPreopen(dir, budget()), loadPreopen(dir, budget())];
    savePreopen(a, new Directory([["new.txt", text("a\n")]]), budget());
    savePreopen(b, new Directory([["new.txt", text("b\n")]]), budget());
    expect(readFileSync(join(dir, "new.txt"), "utf8")).toBe("a\nb\n");
    // Changed, not added to: the run's content replaces the file's.
    const c = loadPreopen(dir, budget());
    savePreopen(c, new Directory([["ledger.txt", text("rewritten, longer than before\n")]]), budget());
    expect(readFileSync(join(dir, "ledger.txt"), "utf8")).toBe("rewritten, longer than before\n");
  });
});
