import { renameSync, rmSync, writeFileSync } from "node:fs";
import { log } from "../log.ts";
import type { Manager } from "../manager/manager.ts";
import type { Storage } from "../storage/repository.ts";
import { keepNewest, newSnapshotFile, snapshotDir } from "../storage/schema.ts";
import { PROGRAM } from "../version.ts";

// serve's snapshots in `<data-dir>/snapshots`: the schema it found (and the snapshot taken before migrating it),
// and, with --snapshot-interval, a portable archive every interval, the newest --snapshot-keep kept.

export const SCHEDULED_PREFIX = "scheduled-";

/** One line on what opening did to the store's schema. */
export function logSchema(store: Storage): void {
  const s = store.schema;
  if (!s) return;
  if (s.from === s.to) log.info(`store schema version ${s.to}`);
  else if (s.from === 0) log.info(`store created at schema version ${s.to}`);
  else
    log.warn(
      `store migrated from schema version ${s.from} to ${s.to}; ` +
        (s.snapshot
          ? `the store as it was is in ${s.snapshot}`
          : "no snapshot was taken (PostgreSQL: back it up with its own tools before an upgrade)"),
    );
}

/** Writes one archive of the whole store into the snapshots folder; keeps the newest `keep`. */
export async function snapshotNow(manager: Manager, dataDir: string, keep: number): Promise<string> {
  const dir = snapshotDir(dataDir);
  const lines = await manager.archive(PROGRAM);
  const file = newSnapshotFile(dir, SCHEDULED_PREFIX, ".jsonl");
  try {
    writeFileSync(`${file}.tmp`, lines.join(""), { mode: 0o600, flag: "wx" });
    renameSync(`${file}.tmp`, file);
  } catch (e) {
    rmSync(`${file}.tmp`, { force: true });
    rmSync(file, { force: true });
    throw e;
  }
  keepNewest(dir, SCHEDULED_PREFIX, keep);
  return file;
}

/** A snapshot every `intervalS` seconds; a failed one is logged and the next is tried on time. */
export function scheduleSnapshots(
  manager: Manager,
  dataDir: string,
  o: { intervalS: number; keep: number },
): { stop(): void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    snapshotNow(manager, dataDir, o.keep)
      .then((file) => log.info(`snapshot written: ${file}`))
      .catch((e) => log.warn(`snapshot failed: ${e instanceof Error ? e.message : e}`))
      .finally(() => {
        busy = false;
      });
  }, o.intervalS * 1000);
  log.info(`a snapshot of the store every ${o.intervalS} s into ${snapshotDir(dataDir)}, newest ${o.keep} kept`);
  return { stop: () => clearInterval(timer) };
}
