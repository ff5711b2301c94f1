import { describe, expect, test } from "bun:test";
import { parseToml } from "../../../src/cli/toml.ts";

// A config file's syntax error names the file and the line (Bun's parser says what, not where).

describe("parseToml", () => {
  test("a syntax error names the file and its line", () => {
    const cases: [string, string][] = [
      ["[serve\nhttp_port = 1\n", "line 1: Expected ']' to close a table header"],
      ["[serve]\nhttp_port = \nmqtt_port = 1883\n", "line 2: Missing value after '='"],
      ['a = 1\n[serve]\nhttp_port = 7070\nname = "x\nb = 2\n', "line 4: Unterminated string"],
      // An array opened and never closed: the line where it opens.
      ["[serve]\nports = [1,\n 2,\n\n", "line 2: Unterminated array"],
      ["[serve]\nhttp_port = 7070\nhttp_port = 7071\n", "line 3: "],
    ];
    for (const [text, said] of cases) {
      expect(() => parseToml(text, "/etc/propeller/config.toml")).toThrow(`/etc/propeller/config.toml, ${said}`);
    }
  });

  test("valid TOML is parsed as Bun parses it, values over several lines too", () => {
    const text = '[serve]\nhttp_port = 7070\nallowed = [\n  "a",\n  "b",\n]\n';
    expect(parseToml(text, "c.toml")).toEqual({ serve: { http_port: 7070, allowed: ["a", "b"] } });
  });
});
