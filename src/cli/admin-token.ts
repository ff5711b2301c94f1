import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LogLevels } from "consola";
import type { Token } from "../core/identity.ts";
import { log } from "../log.ts";
import type { Identities } from "../manager/identities.ts";
import { LOGIN_CODE_TTL_MS, type Sessions } from "../manager/sessions.ts";

// serve's first way in: the admin token file in the data dir, which the CLI on this machine reads, and the
// console's one-time sign-in link printed at start. Apart from the composition (site.ts): how an operator first
// gets in changes here only.

/**
 * With no admin token left (a first start), or none that works in `<data-dir>/admin.token` (expired, revoked, or
 * another store's: the CLI on this machine was refused, and no sign-in link was printed), makes one and writes it
 * there (0600), where the CLI finds it; the site's other admin tokens keep working. No file at all with admin
 * tokens in the store is a restored site (tellAdminAccess says so). Returns the file's admin token, for the
 * console's sign-in link (which holds a one-time code, never the token).
 */
export async function ensureAdminToken(identities: Identities, dataDir: string): Promise<Token | undefined> {
  const file = join(dataDir, "admin.token");
  let dead = false;
  if (identities.hasAdmin()) {
    if (!existsSync(file)) return undefined;
    const held = readTokenFile(file);
    if (held instanceof Error) {
      log.warn(`cannot read ${file} (${held.message}): the CLI on this machine has no admin token there`);
      return undefined;
    }
    const t = held ? identities.verifyToken(held) : undefined;
    if (t?.role === "admin") return t;
    dead = true;
  }
  const t = await identities.createToken({ name: "admin", role: "admin" });
  writeAdminTokenFile(file, t.token);
  if (dead)
    log.warn(
      `${file} held no admin token that works (expired, revoked or another store's): wrote a new admin token there`,
    );
  else log.info(`created an admin token in ${file} (mode 0600): the CLI on this machine uses it`);
  return identities.verifyToken(t.token);
}

function readTokenFile(file: string): string | Error {
  try {
    return readFileSync(file, "utf8").trim();
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

/** The data dir's admin token file, written whole (0600) or not at all. */
export function writeAdminTokenFile(file: string, token: string): void {
  writeFileSync(`${file}.tmp`, `${token}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** Whether the data dir's admin token file holds an admin token that works: `tokens create --data-dir` leaves it. */
export function adminTokenFileWorks(identities: Identities, dataDir: string): boolean {
  const file = join(dataDir, "admin.token");
  const text = existsSync(file) ? readTokenFile(file) : "";
  return typeof text === "string" && text !== "" && identities.verifyToken(text)?.role === "admin";
}

/** Told at start with authentication on: where the admin token is, and the console's sign-in link at `base`. */
export function tellAdminAccess(
  dataDir: string,
  adminToken: Token | undefined,
  sessions: Sessions,
  base: string,
  loginLinkTtlS: number | undefined,
): void {
  const tokenFile = join(dataDir, "admin.token");
  // How to get in, said also at --log-level warn (advised for gateways on flash), where info lines are not: there
  // the console's link and the token's place were printed nowhere.
  const say = (m: string) => (log.level >= LogLevels.info ? log.info(m) : log.warn(m));
  // After a restore the tokens come from the archive, and no file holds one: naming the file would mislead.
  if (existsSync(tokenFile)) say(`REST needs a bearer token: the admin token is in ${tokenFile}`);
  else
    say(
      "REST needs a bearer token: this site's admin tokens came with its store (a restore), none is in a file: " +
        `use the site's admin token, or stop serve and run \`propeller tokens create --data-dir ${dataDir}\``,
    );
  // A one-time code, not the token: the log is kept (the journal), the code is spent at its first use and dies
  // unused after --login-link-ttl (10 minutes); in the fragment, it is never sent in a request line or a Referer.
  if (adminToken) {
    const ttl = loginLinkTtlS ?? LOGIN_CODE_TTL_MS / 1000;
    const code = sessions.mintCode(adminToken, ttl * 1000);
    const url = `${base}/#login=${code}`;
    say(`console (sign-in link, works once within ${ttl} s): ${url}`);
  }
}
