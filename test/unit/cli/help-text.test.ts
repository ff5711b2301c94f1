import { expect, test } from "bun:test";
import { tidyUsage } from "../../../src/cli/help-text.ts";
import { MAIN } from "../../helpers.ts";

// `propeller --help` printed every command row padded to the longest description (hundreds of spaces), which a
// terminal wrapped into screens of blank lines.

test("rows lose their padding; a long row wraps under its description column; other lines stay whole", () => {
  const long = "word ".repeat(40).trim();
  const text = [
    "USAGE propeller serve|proplet|tasks|proplets|jobs|workflows|proxy|push|pull|verify|keys|watch|fl|health",
    "",
    `      serve    short${" ".repeat(300)}`,
    `    proplet    ${long}`,
  ].join("\n");
  const out = tidyUsage(text, 60).split("\n");
  expect(out[0]).toBe(text.split("\n")[0]!);
  expect(out[2]).toBe("      serve    short");
  const rows = out.slice(3);
  expect(rows.length).toBeGreaterThan(3);
  for (const r of rows) expect(r.length).toBeLessThanOrEqual(60);
  for (const r of rows.slice(1)) expect(r).toMatch(/^ {15}word/);
  expect(rows.join(" ").replace(/\s+/g, " ").trim()).toBe(`proplet ${long}`);
});

test("colour codes are not counted as width", () => {
  const row = `  \u001b[36mserve\u001b[39m    ${"abc ".repeat(20).trim()}`;
  for (const l of tidyUsage(row, 40).split("\n"))
    expect(l.replaceAll("\u001b[36m", "").replaceAll("\u001b[39m", "").length).toBeLessThanOrEqual(40);
});

test("propeller --help in a pipe: no line ends in spaces, and command rows fit 80 columns", () => {
  const p = Bun.spawnSync([process.execPath, MAIN, "--help"], { env: { ...process.env, COLUMNS: "" } });
  expect(p.exitCode).toBe(0);
  const lines = p.stdout.toString().split("\n");
  expect(lines.filter((l) => / $/.test(l))).toEqual([]);
  const rows = lines.filter((l) => /^ {2,}\S+ {2,}\S/.test(l));
  expect(rows.length).toBeGreaterThan(20);
  for (const r of rows) expect(r.length).toBeLessThanOrEqual(80);
  expect(lines[0]).not.toContain("built unbuilt");
});

test("serve --help at 80 columns: its wide flag column becomes a name line and an indented description", () => {
  const p = Bun.spawnSync([process.execPath, MAIN, "serve", "--help"], { env: { ...process.env, COLUMNS: "80" } });
  // (EXAMPLES are command lines to copy whole.)
  const lines = p.stdout.toString().split("EXAMPLES")[0]!.split("\n");
  expect(lines.filter((l) => l.length > 80)).toEqual([]);
  const i = lines.indexOf("  --mqtt-max-connections-per-address=<mqtt_max_connections_per_address>");
  expect(i).toBeGreaterThan(0);
  expect(lines[i + 1]).toMatch(/^ {6}MQTT connections/);
});

test("a long alias is shown as it is typed: --manager-url, not -manager-url", () => {
  const out = tidyUsage("  -m, -manager-url, --url=<url>    manager URL", 80);
  expect(out).toBe("  -m, --manager-url, --url=<url>   manager URL");
});
