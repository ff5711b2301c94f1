import { afterAll, beforeAll, expect, test } from "bun:test";
import { openPostgres } from "../../../src/storage/postgres/index.ts";
import { METRICS_RETENTION } from "../../../src/storage/retention.ts";
import { type Postgres, startPostgres } from "../../postgres.ts";

// What only PostgreSQL has to show: the rows themselves stay bounded, not only what the manager reads back.

let pg: Postgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

test("metrics rows beyond the retention bound are deleted in the database too", async () => {
  const s = await openPostgres(await pg.database("retention"));
  try {
    for (let i = 0; i < METRICS_RETENTION + 25; i++) {
      s.metrics.addProplet("p", new Date(1_700_000_000_000 + i * 1000).toISOString(), { i });
      if (i % 100 === 0) await s.durable();
    }
    s.metrics.addTask("t", new Date(1_700_000_000_000).toISOString(), { cpu: 1 });
    await s.durable();
    const rows =
      await s.sql`SELECT owner, count(*)::int AS n, min(at) AS oldest FROM metrics GROUP BY owner ORDER BY owner`;
    expect(rows.map((r: { owner: string; n: number }) => [r.owner, r.n])).toEqual([
      ["p", METRICS_RETENTION],
      ["t", 1],
    ]);
    expect(rows[0].oldest).toBe(new Date(1_700_000_000_000 + 25 * 1000).toISOString());
  } finally {
    await s.close();
  }
});
