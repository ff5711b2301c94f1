import { describe, expect, test } from "bun:test";
import {
  chooseComponentEntry,
  formatWitResult,
  jsName,
  parseType,
  parseWorld,
  witArgs,
} from "../../../src/core/wit.ts";

const WIT = `package root:component;

world root {
  import wasi:cli/environment@0.2.3;
  import log: func(msg: string);

  export wasi:cli/run@0.2.3;
  export example:calc/ops@1.0.0;
  export fetch-all: func(ids: list<u64>, %type: char) -> list<list<s8>>;
  export stats: interface {
    count: func() -> u32;
  }
  export lookup: func(key: string) -> option<string>;
}
`;

describe("WIT world", () => {
  test("function exports with their types; commands and interfaces told apart; imports ignored", () => {
    const w = parseWorld(WIT);
    expect(w.command).toBe(true);
    expect(w.interfaces).toEqual(["example:calc/ops@1.0.0", "stats"]);
    expect([...w.functions.keys()]).toEqual(["fetch-all", "lookup"]);
    const f = w.functions.get("fetch-all")!;
    expect(f.js).toBe("fetchAll");
    expect(f.params).toEqual([
      { name: "ids", type: { kind: "list", of: { kind: "int", name: "u64", bits: 64, signed: false } } },
      { name: "type", type: { kind: "char" } },
    ]);
    expect(w.functions.get("lookup")!.result).toBe("option<string>");
  });

  test("the entry: the named export, else the command, else main or run; the error lists what exists", () => {
    const w = parseWorld(WIT);
    expect(chooseComponentEntry(w, "fetch-all")).toMatchObject({ kind: "call", func: { name: "fetch-all" } });
    expect(chooseComponentEntry(w, "anything")).toEqual({ kind: "command" });
    expect(chooseComponentEntry(w, "x", "missing")).toBe(
      "no export to run: tried missing; the component exports fetch-all, lookup, wasi:cli/run, example:calc/ops@1.0.0, stats",
    );
  });

  test("inputs become typed arguments, or an error names the input and the type", () => {
    const f = parseWorld(WIT).functions.get("fetch-all")!;
    expect(witArgs(f, ["[1, 18446744073709551615]", "x"])).toEqual([[1n, 18446744073709551615n], "x"]);
    expect(witArgs(f, ["[-1]", "x"])).toBe('input 0 ("[-1]") is not a valid list<u64> (a JSON array)');
    expect(witArgs(f, ["[]", "xy"])).toBe('input 1 ("xy") is not a valid char');
    expect(witArgs(parseWorld(WIT).functions.get("lookup")!, ["k"])).toContain(
      "lookup returns option<string>, which task inputs cannot express",
    );
  });

  test("results as text: floats as upstream prints them, lists as JSON, big integers exactly", () => {
    expect(formatWitResult(parseType("f32"), Math.fround(0.1))).toBe("0.1");
    expect(formatWitResult(parseType("f64"), Number.POSITIVE_INFINITY)).toBe("inf");
    expect(formatWitResult(parseType("list<u64>"), [1n, 2n ** 60n])).toBe('[1,"1152921504606846976"]');
    expect(formatWitResult(parseType("list<list<s8>>"), [new Int8Array([1, -1])])).toBe("[[1,-1]]");
    expect(formatWitResult(parseType("bool"), true)).toBe("true");
    expect(formatWitResult(undefined, undefined)).toBe("");
  });

  test("jco's export names", () => {
    expect(jsName("add")).toBe("add");
    expect(jsName("fetch-all-items")).toBe("fetchAllItems");
  });
});
