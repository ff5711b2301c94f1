import { Database } from "bun:sqlite";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { SQL } from "bun";
import { defineCommand } from "citty";
import { type Counts, dumpStore, isEmpty, readArchive, restoreStore } from "../storage/archive.ts";
import { lockDir, RESTORE_LOCK, UnfinishedRestore } from "../storage/lock.ts";
import { openSqlite } from "../storage/sqlite/index.ts";
import { PROGRAM } from "../version.ts";
import { action, UsageError } from "./args.ts";
import { ApiError, authHeaders, endpoint, reason, tlsInit, urlArg } from "./client.ts";
import { keptId, LOCAL_PROPLET_ID_FILE, privateUmask } from "./data-dir.ts";
import {
  present,
  refuseIfHeld,
  type StoreChoice,
  schemaStatus,
  storeArgs,
  storeChoice,
  where,
  withStore,
} from "./store.ts";

// `propeller backup` and `restore`: the portable archive (storage/archive.ts) of the whole store, identities with
// their hashes, whatever the backend. A running serve writes it itself (`POST /backup`: one consistent read of
// everything committed); a stopped store is read directly (--data-dir, --storage). A restore goes into any
// backend, so it also moves a site from one backend to another.

/** The archive's record kinds as a person reads them ("2 entitys, 20 fls" before). */
const KINDS: Record<string, [one: string, many: string]> = {
  entity: ["identity", "identities"],
  fl: ["federated-learning document", "federated-learning documents"],
};

const summary = (c: Counts) =>
  Object.entries(c)
    .map(([k, n]) => `${n} ${(KINDS[k] ?? [k, `${k}s`])[n === 1 ? 0 : 1]}`)
    .join(", ") || "nothing";

/** Writes the archive beside its final name (0600), checks it whole, then moves it in place. */
function writeChecked(file: string, text: string): Counts {
  const { counts } = readArchive(text);
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return counts;
}

export const backupCommand = defineCommand({
  meta: {
    name: "backup",
    description:
      "Write a portable archive of the whole store (tasks, runs, jobs, proplets, identities, FL, metrics): from a running serve, or a stopped store with --data-dir",
  },
  args: {
    file: { type: "positional", description: "the archive to write (JSON lines); must not exist", required: true },
    ...storeArgs,
    ...urlArg,
  },
  run: ({ args }) =>
    action(async () => {
      if (existsSync(args.file)) throw new UsageError(`${args.file} exists: give a new file`);
      // Before asking serve for the whole store: a directory that is not there fails now, saying so.
      const into = dirname(resolve(args.file));
      if (!existsSync(into))
        throw new UsageError(`${into} does not exist: the archive goes into a directory that does`);
      let counts: Counts;
      if (args["data-dir"] || args.storage) {
        const c = storeChoice(args);
        const doing = "back up through it: propeller backup FILE, without --data-dir";
        const empty = () => new UsageError(`the ${c.kind} store at ${where(c)} is empty: nothing to back up`);
        const schema = present(c) ? await schemaStatus(c) : undefined;
        if (schema && schema.current > 0 && schema.pending.length > 0) {
          // A backup changes nothing: an older store is read from a migrated copy, the store itself left as it is.
          if (c.kind !== "sqlite")
            throw new UsageError(
              `${schema.where} has schema version ${schema.current}, older than ${schema.latest} of ${PROGRAM}: back it up with the propeller that wrote it (or pg_dump), or run propeller migrate first`,
            );
          refuseIfHeld(c.dataDir, doing);
          const text = archiveOfCopy(join(c.dataDir, "propeller.db"), localOf(c.dataDir));
          if (readArchive(text).records.length === 0) throw empty();
          counts = writeChecked(args.file, text);
        } else {
          counts = await withStore(c, "backup", doing, (s) => {
            if (isEmpty(s)) throw empty();
            return Promise.resolve(writeChecked(args.file, dumpStore(s, PROGRAM, localOf(c.dataDir)).join("")));
          });
        }
      } else {
        let res: Response;
        const url = endpoint(args.url, "/backup"); // a wrong scheme is its own error, not "cannot reach"
        try {
          res = await fetch(url, {
            method: "POST",
            headers: authHeaders(args),
            ...tlsInit(args),
          });
        } catch (e) {
          throw new ApiError(`cannot reach the manager at ${args.url}: ${reason(e)}`);
        }
        if (!res.ok) throw new ApiError(`POST /backup: ${res.status} ${await res.text()}`);
        try {
          counts = writeChecked(args.file, await res.text());
        } catch (e) {
          throw new ApiError(`the manager's archive is unusable: ${reason(e)}`);
        }
      }
      process.stdout.write(`${args.file}\n`);
      process.stderr.write(`backed up ${summary(counts)}\n`);
    }),
});

/**
 * The archive of an SQLite database that may have an older schema, read from a consistent copy (VACUUM INTO,
 * the write-ahead log included) that is migrated in its place: the database itself is left as it is.
 */
function archiveOfCopy(db: string, localPropletId?: string): string {
  // Beside the database, its owner's only: no copy of it lies where other users may read it.
  const dir = join(dirname(db), `.migrated-copy-${crypto.randomUUID()}`);
  mkdirSync(dir, { mode: 0o700 });
  try {
    const src = new Database(db, { readonly: true });
    try {
      src.run("VACUUM INTO ?", [join(dir, "db")]);
    } finally {
      src.close();
    }
    const s = openSqlite(join(dir, "db"));
    try {
      return dumpStore(s, PROGRAM, localPropletId).join("");
    } finally {
      s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An archive, or a backup file of the earlier kind (an SQLite database), as archive records. */
function readBackup(file: string): ReturnType<typeof readArchive> {
  if (!existsSync(file)) throw new UsageError(`${file} not found`);
  const bytes = readFileSync(file);
  try {
    const sqlite = bytes.subarray(0, 16).toString("latin1") === "SQLite format 3\0";
    return readArchive(sqlite ? archiveOfCopy(file) : bytes.toString("utf8"));
  } catch (e) {
    throw new UsageError(`${file} is not a Propeller backup: ${e instanceof Error ? e.message : e}`);
  }
}

const STORE_FILES = { sqlite: ["propeller.db", "propeller.db-wal", "propeller.db-shm"], kv: ["kv"] } as const;

async function truncate(c: StoreChoice): Promise<void> {
  const sql = new SQL(c.postgresUrl!, { max: 1 });
  try {
    await sql`TRUNCATE tasks, runs, jobs, proplets, metrics, tokens, entities, fl_docs`;
  } finally {
    await sql.close();
  }
}

/**
 * A restore that failed half-way takes back what it wrote: a store half restored was neither the archive's nor
 * empty, and a second try was refused as "not empty". The store set aside for --force is put back.
 */
async function undoRestore(c: StoreChoice, stamp: string | undefined): Promise<string> {
  if (c.kind === "postgres") {
    await truncate(c);
    return "its tables were emptied again (with --force, what they held before was emptied by the restore)";
  }
  for (const n of STORE_FILES[c.kind]) rmSync(join(c.dataDir, n), { recursive: true, force: true });
  if (!stamp) return "nothing of it was kept";
  for (const n of [...STORE_FILES[c.kind], LOCAL_PROPLET_ID_FILE]) {
    const f = join(c.dataDir, n);
    if (existsSync(`${f}.before-restore-${stamp}`)) renameSync(`${f}.before-restore-${stamp}`, f);
  }
  return "nothing of it was kept, and the store it replaced is back";
}

/** Empties a non-empty target for --force: sqlite and kv files are moved aside, PostgreSQL's tables emptied. */
async function setAside(c: StoreChoice, stamp: string): Promise<string> {
  if (c.kind === "postgres") {
    await truncate(c);
    return "its tables were emptied";
  }
  const names = STORE_FILES[c.kind];
  for (const n of names) {
    const f = join(c.dataDir, n);
    if (!existsSync(f)) continue;
    renameSync(f, `${f}.before-restore-${stamp}`);
    // An older restore left it open to others (0644, a 0755 kv dir): the copy kept is the owner's only.
    chmodSync(`${f}.before-restore-${stamp}`, n === "kv" ? 0o700 : 0o600);
  }
  // Its local proplet's id goes with it: the restore writes the archive's own (or serve makes a new one), and the
  // store set aside, put back, comes back with its own local proplet.
  const local = join(c.dataDir, LOCAL_PROPLET_ID_FILE);
  if (existsSync(local)) renameSync(local, `${local}.before-restore-${stamp}`);
  return `the store it held is kept as ${join(c.dataDir, names[0]!)}.before-restore-${stamp}`;
}

/** The local proplet id kept in a stopped store's data dir, for its archive. */
const localOf = (dataDir: string): string | undefined => keptId(dataDir, LOCAL_PROPLET_ID_FILE);

export const restoreCommand = defineCommand({
  meta: {
    name: "restore",
    description:
      "Put a backup into a store (any backend; serve stopped): an empty one, or with --force one whose content it replaces",
  },
  args: {
    file: { type: "positional", description: "the archive (or an older SQLite backup file)", required: true },
    ...storeArgs,
    force: { type: "boolean", description: "restore into a store that is not empty, replacing it", default: false },
  },
  run: ({ args }) =>
    action(async () => {
      const c = storeChoice(args);
      // Named, not the default as serve's: a restore into a data dir the user did not name could replace a store.
      if (!args["data-dir"] && c.kind !== "postgres")
        throw new UsageError(
          `restore needs --data-dir: the store to restore into, empty or new (a running serve's must be stopped first), e.g. propeller restore ${args.file} --data-dir /var/lib/propeller-restored`,
        );
      const archive = readBackup(args.file);
      const doing = "stop it before restoring";
      // A PostgreSQL store's data dir gets the local proplet's id at the end: made now, before any write (it was
      // written to last, and a dir that did not exist failed the restore after all its data was in).
      if (c.kind === "postgres" && args["data-dir"]) mkdirSync(c.dataDir, { recursive: true, mode: 0o700 });
      if (c.kind !== "postgres") {
        // The store holds identities and token hashes: its files are the owner's only, as serve makes them (the
        // dir's owner is not checked: root may restore into the service user's dir, then chown it).
        privateUmask();
        mkdirSync(c.dataDir, { recursive: true, mode: 0o700 });
        refuseIfHeld(c.dataDir, doing);
      }
      // Held from the first look to the last write (the local proplet's id too): no serve starts on a store half
      // restored. Left by a restore that was killed, it keeps every other command off the store (storage/lock.ts).
      const lock = c.kind !== "postgres" ? lockDir(c.dataDir, RESTORE_LOCK) : undefined;
      let aside = "";
      let stamp: string | undefined;
      /** The unfinished restore's mark stays when this one refuses to replace it. */
      let keepMark = false;
      try {
        const o = { writes: true, locked: true };
        if (lock?.unfinishedRestore && c.kind !== "postgres") {
          if (!args.force) {
            keepMark = true;
            throw new UsageError(new UnfinishedRestore(c.dataDir).message);
          }
          // Part of an archive is nobody's store: not kept aside as one.
          for (const n of STORE_FILES[c.kind]) rmSync(join(c.dataDir, n), { recursive: true, force: true });
        }
        if (present(c)) {
          const empty = await withStore(c, "restore", doing, async (s) => isEmpty(s), o);
          if (!empty && !args.force)
            throw new UsageError(
              `the ${c.kind} store at ${where(c)} is not empty: restore into an empty one, or replace it with --force`,
            );
          stamp = new Date().toISOString().replace(/[:.]/g, "-");
          if (!empty) aside = await setAside(c, stamp);
          else stamp = undefined;
        }
        try {
          await withStore(c, "restore", doing, (s) => restoreStore(s, archive.records), { ...o, create: true });
        } catch (e) {
          const undone = await undoRestore(c, stamp);
          throw new UsageError(`the restore failed (${e instanceof Error ? e.message : e}): ${undone}`);
        }
        writeLocalProplet(c, archive, args["data-dir"]);
      } finally {
        lock?.release(keepMark);
      }
      const from = `${archive.header.source} archive of ${archive.header.created_at}`;
      process.stdout.write(`restored ${summary(archive.counts)} (${from}) into ${where(c)}\n`);
      if (aside) process.stderr.write(`${aside}\n`);
      // The identities came back with their hashes: the site's tokens work again, the admin token included.
      if (c.kind !== "postgres" && !existsSync(join(c.dataDir, "admin.token")))
        process.stderr.write(
          `the site's tokens work again: use its admin token (copy admin.token into ${c.dataDir})\n`,
        );
    }),
});

/** The archive's local proplet id into the data dir it was restored to. */
function writeLocalProplet(c: StoreChoice, archive: ReturnType<typeof readBackup>, dataDir: string | undefined): void {
  // The site's local proplet comes back as itself (its history, its pinned tasks), not as a new one beside a
  // dead one. Only into a data dir named (a PostgreSQL store may be restored from anywhere).
  // Not one the archive registers as an identity: serve's local proplet logs in with an internal identity that
  // shadows a stored one of its id (manager/identities.ts), so it would take that proplet's place and tasks.
  const local = archive.header.local_proplet_id;
  const registered = archive.records.some((r) => r.k === "entity" && r.v.id === local);
  if (local && registered)
    process.stderr.write(
      `the archive names ${local} as serve's local proplet, but ${local} is a registered identity: not taken (serve makes a new local proplet)\n`,
    );
  else if (local && dataDir) writeFileSync(join(c.dataDir, LOCAL_PROPLET_ID_FILE), local, { mode: 0o600 });
}
