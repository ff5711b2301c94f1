import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Token } from "../core/identity.ts";
import { log } from "../log.ts";
import type { Identities } from "../manager/identities.ts";
import { LOGIN_CODE_TTL_MS, type Sessions } from "../manager/sessions.ts";

// serve's first way in: the admin token file in the data dir, which the CLI on this machine reads, and the
// console's one-time sign-in link printed at start. Apart from the composition (site.ts): how an operator first
// gets in changes here only.

/**
 * With no admin token left (a first start), makes one and writes it to `<data-dir>/admin.token` (0600), where
 * the CLI finds it. Returns the token of that file when it is valid, for the console's sign-in link (which holds a
 * one-time code, never the token).
 */
export async function ensureAdminToken(identities: Identities, dataDir: string): Promise<Token | undefined> {
  const file = join(dataDir, "admin.token");
  if (identities.hasAdmin()) {
    const text = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
    return text ? identities.verifyToken(text) : undefined;
  }
  const t = await identities.createToken({ name: "admin", role: "admin" });
  writeAdminTokenFile(file, t.token);
  log.info(`created an admin token in ${file} (mode 0600): the CLI on this machine uses it`);
  return identities.verifyToken(t.token);
}

/** The data dir's admin token file, written whole (0600) or not at all. */
export function writeAdminTokenFile(file: string, token: string): void {
  writeFileSync(`${file}.tmp`, `${token}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** Whether the data dir's admin token file holds an admin token that works: `tokens create --data-dir` leaves it. */
export function adminTokenFileWorks(identities: Identities, dataDir: string): boolean {
  const file = join(dataDir, "admin.token");
  const text = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
  return Boolean(text) && identities.verifyToken(text)?.role === "admin";
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
  // After a restore the tokens come from the archive, and no file holds one: naming the file would mislead.
  if (existsSync(tokenFile)) log.info(`REST needs a bearer token: the admin token is in ${tokenFile}`);
  else
    log.info(
      "REST needs a bearer token: this site's admin tokens came with its store (a restore), none is in a file: " +
        `use the site's admin token, or stop serve and run \`propeller tokens create --data-dir ${dataDir}\``,
    );
  // A one-time code, not the token: the log is kept (the journal), the code is spent at its first use and dies
  // unused after --login-link-ttl (10 minutes); in the fragment, it is never sent in a request line or a Referer.
  if (adminToken) {
    const ttl = loginLinkTtlS ?? LOGIN_CODE_TTL_MS / 1000;
    const code = sessions.mintCode(adminToken, ttl * 1000);
    const url = `${base}/#login=${code}`;
    log.info(`console (sign-in link, works once within ${ttl} s): ${url}`);
  }
}
