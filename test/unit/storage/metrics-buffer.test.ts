import { Database } from "bun:sqlite";
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { withBufferedMetrics } from "../../../src/storage/metrics-buffer.ts";
import type { Storage } from "../../../src/storage/repository.ts";
import { METRICS_RETENTION } from "../../../src/storage/retention.ts";
import { openSqlite } from "../../../src/storage/sqlite/index.ts";
import { tempDir } from "../../helpers.ts";

// Metrics samples are held in memory and written in batches (flash wear): reads see held and stored samples as
// one list, newest first, bounded as before; closing writes what is held.

let store: Storage | undefined;
afterEach(() => store?.close());

const rowsIn = (path: string) => {
  const db = new Database(path, { readonly: true });
  const n = db.query<{ n: number }, []>("SELECT count(*) AS n FROM metrics").get()!.n;
  db.close();
  return n;
};
const at = (i: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();

test("held samples are read with the stored ones, newest first, and reach the database only when written", async () => {
  const path = join(tempDir(), "m.db");
  store = withBufferedMetrics(openSqlite(path));
  for (let i = 0; i < 5; i++) store.metrics.addProplet("p", at(i), { i });
  await store.durable();
  expect(rowsIn(path)).toBe(0); // held, not written
  expect(store.metrics.listProplet("p", 0, 3)).toEqual({ total: 5, items: [{ i: 4 }, { i: 3 }, { i: 2 }] });
  (store.metrics as unknown as { flush(): void }).flush();
  await store.durable();
  expect(rowsIn(path)).toBe(5);
  for (let i = 5; i < 8; i++) store.metrics.addProplet("p", at(i), { i });
  // A page across held (7, 6, 5) and stored (4, 3…) samples.
  expect(store.metrics.listProplet("p", 2, 3)).toEqual({ total: 8, items: [{ i: 5 }, { i: 4 }, { i: 3 }] });
  expect(store.metrics.listProplet("p", 7, 5)).toEqual({ total: 8, items: [{ i: 0 }] });
  expect(store.metrics.listTask("p", 0, 5)).toEqual({ total: 0, items: [] });
  store.close();
  store = undefined;
  expect(rowsIn(path)).toBe(8); // closing wrote what was held
});

test("the bound per proplet holds across held and stored samples", async () => {
  const path = join(tempDir(), "m.db");
  store = withBufferedMetrics(openSqlite(path));
  for (let i = 0; i < METRICS_RETENTION + 50; i++) store.metrics.addTask("t", at(i), { i });
  const page = store.metrics.listTask("t", METRICS_RETENTION - 2, 10);
  expect(page.total).toBe(METRICS_RETENTION);
  expect(page.items).toEqual([{ i: 51 }, { i: 50 }]);
  store.close();
  store = undefined;
  expect(rowsIn(path)).toBe(METRICS_RETENTION);
});
