import { chownSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type Serve, startServe } from "./helpers.ts";

// A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl from Debian's `postgresql` package, run as the
// `postgres` user when the tests run as root (initdb refuses root), on a free loopback port, removed afterwards.
// With no PostgreSQL installed this throws, naming the package: the tests that need it fail, never skip.

export interface Postgres {
  /** A URL for the `postgres` database; `database(name)` makes another. */
  url: string;
  database(name: string): Promise<string>;
  stop(): Promise<void>;
}

function binDir(): string {
  const root = "/usr/lib/postgresql";
  let versions: string[] = [];
  try {
    versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  } catch {}
  if (!versions.length) throw new Error(`PostgreSQL is not installed (no ${root}): apt-get install postgresql`);
  return join(root, versions[0]!, "bin");
}

function run(cmd: string[]): void {
  const asPostgres = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
  const r = Bun.spawnSync(asPostgres, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString()}${r.stdout.toString()}`);
}

export async function startPostgres(): Promise<Postgres> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), "propeller-pg-"));
  if (process.getuid?.() === 0) {
    const id = Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString().trim();
    const gid = Bun.spawnSync(["id", "-g", "postgres"]).stdout.toString().trim();
    chownSync(dir, Number(id), Number(gid));
  }
  const data = join(dir, "data");
  run([join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`;
  run([join(bin, "pg_ctl"), "-D", data, "-l", join(dir, "log"), "-w", "-t", "60", "-o", opts, "start"]);
  const base = `postgres://postgres@127.0.0.1:${port}`;
  const { SQL } = await import("bun");
  return {
    url: `${base}/postgres`,
    database: async (name) => {
      const sql = new SQL(`${base}/postgres`);
      await sql.unsafe(`CREATE DATABASE "${name}"`);
      await sql.close();
      return `${base}/${name}`;
    },
    stop: async () => {
      try {
        run([join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * One of a site's managers: serve on PostgreSQL (env PROPELLER_DB_URL and the rest in `env`) and a shared broker,
 * no local proplet, heartbeats every second; `httpPort` to listen where a test needs it to.
 */
export async function startManager(o: {
  dataDir: string;
  mqttUrl: string;
  env: Record<string, string>;
  extra?: string[];
  httpPort?: number;
}): Promise<Serve> {
  return startServe({
    dataDir: o.dataDir,
    extra: [
      ...["--storage", "postgres", "--mqtt-url", o.mqttUrl, "--no-local-proplet", "--liveliness-interval", "1"],
      ...(o.extra ?? []),
    ],
    env: o.env,
    ...(o.httpPort ? { ports: { http: o.httpPort, mqtt: await freePort() } } : {}),
  });
}
