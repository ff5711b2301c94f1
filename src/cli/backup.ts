import { Database } from "bun:sqlite";
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { lockDir, lockHolder } from "../storage/lock.ts";
import { openSqlite } from "../storage/sqlite/index.ts";
import { action, UsageError } from "./args.ts";
import { ApiError, authHeaders, managerUrl, reason, tlsInit, urlArg } from "./client.ts";

// `propeller backup` and `restore`. A running serve copies its live database itself (`POST /backup`, VACUUM INTO:
// one consistent snapshot of everything committed); a stopped one's data dir is copied directly. Copying the
// .db file by hand would miss what still sits in the write-ahead log.

const DB = "propeller.db";

function refuseIfHeld(dir: string, doing: string): void {
  const holder = lockHolder(dir);
  if (holder) throw new UsageError(`${dir} is in use by ${holder.what} (PID ${holder.pid}): ${doing}`);
}

/** A file we can restore: an SQLite database with our schema. */
function checkBackup(file: string): void {
  if (!existsSync(file)) throw new UsageError(`${file} not found`);
  try {
    const db = new Database(file, { readonly: true });
    const v = db.query<{ v: number | null }, []>("SELECT max(version) AS v FROM schema_migrations").get()?.v;
    db.query("SELECT count(*) FROM tasks").get();
    db.close();
    if (!v) throw new Error("no schema version");
  } catch (e) {
    throw new UsageError(`${file} is not a Propeller backup: ${e instanceof Error ? e.message : e}`);
  }
}

export const backupCommand = defineCommand({
  meta: {
    name: "backup",
    description: "Copy the database consistently: from a running serve (REST, admin token) or a stopped data dir",
  },
  args: {
    file: { type: "positional", description: "the backup file to write", required: true },
    "data-dir": { type: "string", description: "back up this stopped serve's data dir directly instead" },
    ...urlArg,
  },
  run: ({ args }) =>
    action(async () => {
      if (existsSync(args.file)) throw new UsageError(`${args.file} exists: give a new file`);
      const dir = args["data-dir"];
      if (dir) {
        refuseIfHeld(dir, "back up through it: propeller backup FILE, without --data-dir");
        const lock = lockDir(dir, "backup");
        try {
          const store = openSqlite(join(dir, DB));
          // The copy holds what the database does: its owner's only, as the live one.
          closeSync(openSync(args.file, "wx", 0o600));
          store.backup(args.file);
          store.close();
        } finally {
          lock.release();
        }
      } else {
        let res: Response;
        try {
          res = await fetch(new URL("/backup", managerUrl(args.url)), {
            method: "POST",
            headers: authHeaders(args),
            ...tlsInit(args),
          });
        } catch (e) {
          throw new ApiError(`cannot reach the manager at ${args.url}: ${reason(e)}`);
        }
        if (!res.ok) throw new ApiError(`POST /backup: ${res.status} ${await res.text()}`);
        writeFileSync(`${args.file}.tmp`, new Uint8Array(await res.arrayBuffer()), { mode: 0o600 });
        renameSync(`${args.file}.tmp`, args.file);
      }
      checkBackup(args.file);
      process.stdout.write(`${args.file}\n`);
    }),
});

export const restoreCommand = defineCommand({
  meta: { name: "restore", description: "Put a backup in place as a data dir's database (serve must be stopped)" },
  args: {
    file: { type: "positional", description: "the backup file", required: true },
    "data-dir": { type: "string", description: "the data dir to restore into", required: true },
  },
  run: ({ args }) =>
    action(async () => {
      const dir = args["data-dir"];
      checkBackup(args.file);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      refuseIfHeld(dir, "stop it before restoring");
      const lock = lockDir(dir, "restore");
      try {
        const db = join(dir, DB);
        // The database it replaces stays beside it, with its log folded in by the move of all three files.
        if (existsSync(db)) {
          for (const ext of ["", "-wal", "-shm"])
            if (existsSync(db + ext)) renameSync(db + ext, `${db}.before-restore${ext}`);
        }
        copyFileSync(args.file, `${db}.tmp`);
        chmodSync(`${db}.tmp`, 0o600); // a copy takes the backup file's mode, which may be open to others
        renameSync(`${db}.tmp`, db);
        rmSync(`${db}-wal`, { force: true });
        rmSync(`${db}-shm`, { force: true });
      } finally {
        lock.release();
      }
      process.stdout.write(`restored ${args.file} into ${dir}\n`);
      // Tokens are restored with the rest: the admin token the site had (kept outside the database) works again.
      if (!existsSync(join(dir, "admin.token"))) {
        process.stderr.write(
          `the site's tokens came back with it: use its admin token (copy admin.token into ${dir})\n`,
        );
      }
    }),
});
