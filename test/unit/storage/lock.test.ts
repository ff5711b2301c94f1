import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { statFields } from "../../../src/core/procstat.ts";
import { DirInUse, lockDir } from "../../../src/storage/lock.ts";
import { tempDir } from "../../helpers.ts";

// A process killed with -9 is a zombie until its parent reaps it, and kill(pid, 0) still answers for it: its lock
// must not keep a restarted proplet out. A real zombie: sh starts `sleep` in the background and execs a process
// that never reaps it.
const parent = Bun.spawn(["sh", "-c", "sleep 0.05 & echo $!; exec sleep 20"], { stdout: "pipe" });
afterAll(() => parent.kill());

test("a lock held by a zombie is taken over; one held by a live process is not", async () => {
  const reader = parent.stdout.getReader();
  const pid = Number(new TextDecoder().decode((await reader.read()).value).trim());
  let fields: string[] = [];
  for (let i = 0; i < 100; i++) {
    fields = statFields(readFileSync(`/proc/${pid}/stat`, "utf8"));
    if (fields[0] === "Z") break;
    await Bun.sleep(20);
  }
  expect(fields[0]).toBe("Z");
  const dir = tempDir();
  writeFileSync(join(dir, "lock"), `${pid} ${fields[19]} proplet\n`);
  const lock = lockDir(dir, "proplet");
  expect(readFileSync(join(dir, "lock"), "utf8")).toStartWith(`${process.pid} `);
  lock.release();
  // The living parent (sleep 20) still holds a lock of its own.
  const live = statFields(readFileSync(`/proc/${parent.pid}/stat`, "utf8"));
  writeFileSync(join(dir, "lock"), `${parent.pid} ${live[19]} proplet\n`);
  expect(() => lockDir(dir, "proplet")).toThrow(DirInUse);
});
