import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { readRegularFile } from "../bounded-file.ts";

// What this proplet received and finished recently, by run id (docs/ARCHITECTURE.md, "Exactly once, and what it
// means here"). A manager that meets a run its proplet no longer lists (a takeover, a restart, a heartbeat that
// omits it) sends its start again, same run id: the record answers it. Never received: it runs. Running: nothing.
// Finished: its result again (the outbox's file, kept once delivered), not a second execution. Received and never
// finished (this proplet was killed mid-run): a failed result, not a second execution.
//
// On disk in the state dir: one small line appended when a start is received (before the guest starts, so a crash
// after it cannot make the proplet say "never received" for a run that ran) and one when it finishes; rewritten
// with only the newest runs when the log doubles. The write survives a kill of the process; like the outbox, it is
// not synced to the device, so a power cut in the kernel's writeback window may lose the newest lines.

export interface RecordedRun {
  task: string;
  /** Finished here (its result was queued to the outbox); false: received, and not (yet) finished. */
  finished: boolean;
  /** When it was received, ms since the epoch (this proplet's clock). */
  at: number;
  /** A latent task's deployment: never "finished", it runs nothing until invoked (deployed again when asked). */
  latent?: boolean;
}

export interface RunRecordLimits {
  /** Runs remembered. */
  maxRuns: number;
  /** Delivered results kept for a start sent again (each is the outbox's file, moved). */
  maxResults: number;
  /** Their bytes in all (a guest's stdout result may be 8 MiB: 200 of them would be 1.6 GB of an edge disk). */
  maxResultBytes: number;
}

const DEFAULT_LIMITS: RunRecordLimits = { maxRuns: 2000, maxResults: 200, maxResultBytes: 64 << 20 };

/** runs.log at most (2,000 runs compacted are ~0.5 MiB) and a kept result at most (a result message is <= 16 MiB). */
const MAX_LOG_BYTES = 16 << 20;
const MAX_RESULT_FILE_BYTES = 17 << 20;

/**
 * A state file's text, if it is a regular file of at most `max` bytes; else undefined. Opened without following a
 * symlink and without blocking, so a FIFO or device left in the state dir neither hangs the proplet's start nor
 * fills its memory.
 */
function regularSize(path: string): number | undefined {
  try {
    const st = lstatSync(path);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

function readStateFile(path: string, max: number): string | undefined {
  try {
    return readRegularFile(path, max, { noFollow: true }).toString("utf8");
  } catch {
    return undefined;
  }
}

/** A run id safe as a file name (the manager's are UUIDs); others are recorded but their result is not kept. */
const SAFE_RUN = /^[A-Za-z0-9_-]{1,64}$/;

export class RunRecord {
  private runs = new Map<string, RecordedRun>();
  /** Run ids whose delivered result is kept, oldest first, and their files' bytes. */
  private kept: string[] = [];
  private keptBytes = new Map<string, number>();
  private keptTotal = 0;
  private fd?: number;
  private lines = 0;
  private compactAt = 64;
  /**
   * Since when (ms, this proplet's clock) the record has every run this proplet received: when it was made, or the
   * receipt of the newest run it forgot. A run sent before then may have come and gone: it cannot say "never".
   */
  since = Date.now();

  private limits: RunRecordLimits;

  constructor(
    private dir: string | undefined,
    limits: Partial<RunRecordLimits> = {},
    private warn: (m: string) => void = () => {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    if (!dir) return;
    mkdirSync(join(dir, "results"), { recursive: true, mode: 0o700 });
    const log = join(dir, "runs.log");
    const text = existsSync(log) ? readStateFile(log, MAX_LOG_BYTES) : "";
    if (text === undefined) {
      // Not a log this proplet wrote: a new record begins now (a start sent again for an earlier run is then
      // answered "cannot tell", never run twice); the file is replaced by the first rewrite.
      warn(`run record: ${log} is not a regular file of at most ${MAX_LOG_BYTES >> 20} MiB; starting a new record`);
      rmSync(log, { force: true, recursive: true });
    }
    if (text) {
      for (const line of text.split("\n")) {
        const [kind, run, task, at, flag] = line.split("\t");
        if (kind === "S" && Number(run)) this.since = Number(run);
        if (!run) continue;
        if (kind === "R" && task && at)
          this.runs.set(run, { task, finished: false, at: Number(at) || 0, ...(flag === "L" ? { latent: true } : {}) });
        else if (kind === "F") {
          const r = this.runs.get(run);
          if (r) r.finished = true;
        }
      }
    }
    for (const f of readdirSync(join(dir, "results")).sort()) {
      const run = f.endsWith(".json") ? f.slice(0, -5) : "";
      const size = this.runs.has(run) ? regularSize(join(dir, "results", f)) : undefined;
      if (size !== undefined) this.keep(run, size);
      // (recursive: a directory left there must not stop the proplet from starting)
      else rmSync(join(dir, "results", f), { force: true, recursive: true });
    }
    this.boundResults();
    this.compact();
  }

  /** Whether the record survives a restart of this proplet (a manager may then trust its "never received"). */
  get durable(): boolean {
    return this.dir !== undefined;
  }

  /** Whether a run sent at `sentAt` (the manager's clock, allowed `skewMs` off) would be here had it come. */
  covers(sentAt: number, skewMs: number): boolean {
    return this.durable && sentAt - skewMs > this.since;
  }

  get(run: string): RecordedRun | undefined {
    return this.runs.get(run);
  }

  /** A start was received: recorded (on disk) before anything of it runs. */
  received(run: string, task: string, latent = false): void {
    const r: RecordedRun = { task, finished: false, at: Date.now(), ...(latent ? { latent } : {}) };
    this.runs.set(run, r);
    // In memory only (serve's local proplet): no line to make.
    if (this.dir) this.append(line(run, r));
    this.bound();
  }

  /**
   * The runs this proplet had received and not finished when it stopped (read at its start, before any new one):
   * each is over, and says so at once, rather than when the manager asks about a run the first heartbeats no longer
   * list (10 s and more later, during which its cron firings found it still Running and were skipped).
   */
  interrupted(): [run: string, task: string][] {
    return [...this.runs].filter(([, r]) => !r.finished && !r.latent).map(([run, r]) => [run, r.task]);
  }

  /** The run finished here: its result is in the outbox (or was published). */
  finished(run: string): void {
    const r = this.runs.get(run);
    if (!r || r.finished) return;
    r.finished = true;
    this.append(`F\t${run}\n`);
  }

  /** Where the outbox moves a delivered result so a start sent again gets it; undefined: not kept. */
  resultFile(run: string): string | undefined {
    if (!this.dir || !SAFE_RUN.test(run) || !this.runs.has(run)) return undefined;
    return join(this.dir, "results", `${run}.json`);
  }

  /** The outbox moved a delivered result to `resultFile(run)`: the oldest kept ones beyond the limit go. */
  resultKept(run: string): void {
    const f = this.resultFile(run);
    const size = f ? regularSize(f) : undefined;
    if (size !== undefined) {
      // Kept again (its start sent again, its result delivered again): counted once, at its new size.
      if (this.keptBytes.has(run)) this.keptTotal -= this.keptBytes.get(run)!;
      else this.kept.push(run);
      this.keptBytes.set(run, size);
      this.keptTotal += size;
    }
    this.boundResults();
  }

  private keep(run: string, size: number): void {
    this.kept.push(run);
    this.keptBytes.set(run, size);
    this.keptTotal += size;
  }

  /** Over a limit (count or bytes): the oldest kept results go. */
  private boundResults(): void {
    while (this.kept.length > this.limits.maxResults || this.keptTotal > this.limits.maxResultBytes)
      this.forget(this.kept[0]!);
  }

  /** A kept result no longer kept: its file removed. */
  private forget(run: string): void {
    const i = this.kept.indexOf(run);
    if (i < 0) return;
    this.kept.splice(i, 1);
    this.keptTotal -= this.keptBytes.get(run) ?? 0;
    this.keptBytes.delete(run);
    this.dropResult(run);
  }

  /** A delivered result kept for this run (the payload as it was published), if any. */
  keptResult(run: string): string | undefined {
    const f = this.kept.includes(run) ? this.resultFile(run) : undefined;
    try {
      const text = f ? readStateFile(f, MAX_RESULT_FILE_BYTES) : undefined;
      return text ? JSON.parse(text).payload : undefined;
    } catch {
      return undefined;
    }
  }

  private dropResult(run: string): void {
    if (this.dir && SAFE_RUN.test(run)) rmSync(join(this.dir, "results", `${run}.json`), { force: true });
  }

  private append(line: string): void {
    if (!this.dir) return;
    try {
      this.fd ??= openSync(join(this.dir, "runs.log"), "a", 0o600);
      writeSync(this.fd, line);
      this.lines++;
    } catch (e) {
      this.warn(`run record: could not write ${join(this.dir, "runs.log")}: ${e instanceof Error ? e.message : e}`);
    }
    if (this.lines > this.compactAt) this.compact();
  }

  /** Over the limit: the oldest runs are forgotten (and their kept results removed). */
  private bound(): void {
    while (this.runs.size > this.limits.maxRuns) {
      const oldest = this.runs.keys().next().value!;
      this.since = Math.max(this.since, this.runs.get(oldest)!.at);
      this.runs.delete(oldest);
      this.forget(oldest);
    }
  }

  /** Rewrites the log with the runs remembered now: two lines at most per run. */
  private compact(): void {
    if (!this.dir) return;
    this.bound();
    const path = join(this.dir, "runs.log");
    let text = `S\t${this.since}\n`;
    for (const [run, r] of this.runs) text += `${line(run, r)}${r.finished ? `F\t${run}\n` : ""}`;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    this.lines = text.split("\n").length - 1;
    // Rewritten again once the log has doubled: the rewrites cost at most as many bytes as the appends.
    this.compactAt = Math.max(2 * this.lines, 64);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** A run's "received" line: run id, task, when, and L for a latent task's deployment. */
function line(run: string, r: RecordedRun): string {
  return `R\t${run}\t${r.task.replaceAll(/[\t\n]/g, " ")}\t${r.at}${r.latent ? "\tL" : ""}\n`;
}
