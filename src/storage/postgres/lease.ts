import type { SQL } from "bun";

// Who is the active manager of a site whose managers share one PostgreSQL database: the holder of a row in
// `lease`, renewed every second and valid for TTL_MS. Taking it over increments the epoch; every write
// transaction of the active manager checks that its epoch still holds (the fence), so a manager that lost the
// lease cannot write again, even if it does not know yet.

export const TTL_MS = 3000;
export const RENEW_MS = 1000;
const NAME = "site";

export class LeaseLost extends Error {}

export interface Holder {
  holder: string;
  url: string | null;
  live: boolean;
}

export class Lease {
  epoch = 0;

  constructor(
    private sql: SQL,
    /** This manager's instance id. */
    readonly me: string,
    /** Where this manager answers REST, for a stand-by to forward to. */
    private url: string,
  ) {}

  /** Takes the lease if it is free or expired; true if this manager now holds it. */
  async acquire(): Promise<boolean> {
    const ttl = `${TTL_MS} milliseconds`;
    const [taken] = await this.sql`
      INSERT INTO lease (name, holder, epoch, expires_at, url)
      VALUES (${NAME}, ${this.me}, 1, now() + ${ttl}::interval, ${this.url})
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = lease.epoch + 1,
        expires_at = excluded.expires_at, url = excluded.url
      WHERE lease.expires_at < now() OR lease.holder = ${this.me}
      RETURNING epoch`;
    if (!taken) return false;
    this.epoch = Number(taken.epoch);
    return true;
  }

  /** Extends the lease; throws LeaseLost if another manager took it. */
  async renew(): Promise<void> {
    const ttl = `${TTL_MS} milliseconds`;
    const rows = await this.sql`
      UPDATE lease SET expires_at = now() + ${ttl}::interval
      WHERE name = ${NAME} AND holder = ${this.me} AND epoch = ${this.epoch} RETURNING epoch`;
    if (!rows.length) throw new LeaseLost(`another manager took the lease (this one held epoch ${this.epoch})`);
  }

  /** Inside a write transaction: aborts it unless this manager still holds its epoch. */
  async check(tx: SQL): Promise<void> {
    const rows = await tx`
      SELECT 1 FROM lease WHERE name = ${NAME} AND holder = ${this.me} AND epoch = ${this.epoch} FOR SHARE`;
    if (!rows.length) throw new LeaseLost(`fenced: this manager no longer holds epoch ${this.epoch}`);
  }

  /** Gives the lease up at a graceful shutdown, so a stand-by takes over at once. */
  async release(): Promise<void> {
    await this.sql`UPDATE lease SET expires_at = now() - interval '1 second'
      WHERE name = ${NAME} AND holder = ${this.me} AND epoch = ${this.epoch}`;
  }

  async current(): Promise<Holder | undefined> {
    const [row] = await this.sql`SELECT holder, url, expires_at > now() AS live FROM lease WHERE name = ${NAME}`;
    return row ? { holder: row.holder, url: row.url, live: row.live } : undefined;
  }
}
