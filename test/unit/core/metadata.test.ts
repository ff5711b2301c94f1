import { expect, test } from "bun:test";
import { parseMetadataArg } from "../../../src/core/metadata.ts";

// The CLI's --metadata: upstream's KEY=VALUE pairs or a JSON object; anything else is a usage error with the reason.

test("--metadata takes KEY=VALUE pairs or a JSON object, and says what is wrong", () => {
  expect(parseMetadataArg("env=prod,zone = eu-1")).toEqual({ env: "prod", zone: "eu-1" });
  expect(parseMetadataArg("url=http://x/?a=b")).toEqual({ url: "http://x/?a=b" });
  expect(parseMetadataArg('{"n": 1}')).toEqual({ n: 1 });
  expect(parseMetadataArg("env")).toBe('expected KEY=VALUE, got "env"');
  expect(parseMetadataArg("=x")).toBe('expected KEY=VALUE, got "=x"');
  expect(parseMetadataArg("{nope")).toMatch(/^not JSON: /);
  expect(parseMetadataArg("[1]")).toBe('expected KEY=VALUE, got "[1]"');
});
