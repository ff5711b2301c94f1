import { afterEach, expect, test } from "bun:test";
import { terminalSafe } from "../../src/cli/output.ts";
import { fields, log, priority, setLogFormat, setLogLevel, tag } from "../../src/log.ts";

// The line formats a collector reads: journald's `<N>` priority prefix and JSON with the ids as fields.

const write = process.stderr.write.bind(process.stderr);
function capture(fn: () => void): string[] {
  const lines: string[] = [];
  process.stderr.write = ((s: string) => {
    lines.push(String(s));
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = write;
  }
  return lines.join("").split("\n").filter(Boolean);
}

afterEach(() => {
  setLogFormat("pretty", false);
  setLogLevel("info");
});

test("syslog priorities: error 3, warn 4, info 6, debug 7", () => {
  expect([0, 1, 2, 3, 4, 5].map(priority)).toEqual([3, 4, 6, 6, 7, 7]);
});

test("under journald: <N> before each line, fields as key=value, no colour", () => {
  setLogFormat("pretty", true);
  setLogLevel("debug");
  const l = tag("manager");
  const lines = capture(() => {
    l.warn("task failed: boom", fields({ task_id: "t1", run_id: "r 1", proplet_id: undefined }));
    log.info("plain");
    l.debug("detail");
    log.error("bad");
  });
  expect(lines).toEqual([
    '<4>[manager] task failed: boom task_id=t1 run_id="r 1"',
    "<6>plain",
    "<7>[manager] detail",
    "<3>bad",
  ]);
});

test("JSON: ids are top-level fields, not in the message", () => {
  setLogFormat("json", false);
  const lines = capture(() => tag("proplet").warn("task failed: boom", fields({ task_id: "t1", run_id: "r1" })));
  const o = JSON.parse(lines[0]!);
  expect(o).toMatchObject({ level: "warn", tag: "proplet", message: "task failed: boom", task_id: "t1", run_id: "r1" });
});

/** Every way a line is written: pretty, pretty under journald, JSON. */
const EVERY_FORMAT = [
  ["pretty", false],
  ["pretty", true],
  ["json", false],
] as const;

test("lines that differ only in their fields are all written, not folded into 'repeated N times'", () => {
  // consola folds a line repeated within a second (its throttle compares the arguments as JSON, which does not
  // see the fields' symbol key): a busy proplet's "task completed" lines for different tasks were swallowed.
  for (const [format, journald] of EVERY_FORMAT) {
    setLogFormat(format, journald);
    const l = tag("proplet");
    const lines = capture(() => {
      for (let i = 0; i < 20; i++) l.info("task completed", fields({ task_id: `t${i}` }));
    });
    expect(lines.length).toBe(20);
    expect(lines.join("\n")).not.toContain("repeated");
    for (let i = 0; i < 20; i++) expect(lines[i]).toContain(`t${i}`);
  }
});

test("DEL and C1 controls in a field (U+009B is CSI) are escaped in every format, as in the message", () => {
  for (const [format, journald] of EVERY_FORMAT) {
    setLogFormat(format, journald);
    const lines = capture(() => log.warn("m\u009b2J", fields({ task_id: "a\u009b31mb", run_id: "c\u007fd" })));
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\u007f-\u009f]/);
    if (format === "json") expect(JSON.parse(lines[0]!)).toMatchObject({ task_id: "a\u009b31mb", run_id: "c\u007fd" });
    else expect(lines[0]).toContain('task_id="a\\u009b31mb" run_id="c\\u007fd"');
  }
});

test("characters that reorder a line (U+202E, U+2066, U+2028) are escaped in the message and the fields, in every format", () => {
  // A guest's error holding U+202E made the rest of its log line, task_id and proplet_id included, read backwards.
  for (const [format, journald] of EVERY_FORMAT) {
    setLogFormat(format, journald);
    const lines = capture(() =>
      log.warn("task failed: \u202eexe.png\u2028next", fields({ task_id: "t\u2066x", error: "e\u202dr" })),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\u202a-\u202e\u2066-\u2069\u2028\u2029]/);
    if (format === "json") expect(JSON.parse(lines[0]!)).toMatchObject({ task_id: "t\u2066x", error: "e\u202dr" });
    else {
      expect(lines[0]).toContain("task failed: \\u202eexe.png\\u2028next");
      expect(lines[0]).toContain('task_id="t\\u2066x"');
    }
  }
});

test("terminalSafe escapes reordering characters as it does controls", () => {
  expect(terminalSafe("a\u202eb\u2029c\u001bd")).toBe("a\\u202eb\\u2029c\\x1bd");
  expect(terminalSafe("one\ntwo\u200f", true)).toBe("one\ntwo\\u200f");
});
