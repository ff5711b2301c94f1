import { expect, test } from "bun:test";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { keepNewest } from "../../../src/storage/schema.ts";
import { tempDir } from "../../helpers.ts";

// Snapshots kept in the data dir (pre-migration copies, scheduled archives): a copy killed half-way left a file of
// a good snapshot's name with no tables in it, which the next migrate kept beside the good ones and counted against
// the three kept. Now a copy is written under `.tmp` and renamed whole; what a killed one leaves goes.

test("the newest snapshots are kept; what a copy killed half-way left goes, and does not count", () => {
  const dir = tempDir();
  const names = ["pre-migrate-1.db", "pre-migrate-2.db", "pre-migrate-3.db", "pre-migrate-4.db"];
  for (const n of names) writeFileSync(join(dir, n), "a snapshot");
  writeFileSync(join(dir, "pre-migrate-5.db"), ""); // the name a killed copy held
  writeFileSync(join(dir, "pre-migrate-5.db.tmp"), "half");
  writeFileSync(join(dir, "pre-migrate-5.db.tmp-journal"), "half");
  writeFileSync(join(dir, "other.db"), "not ours");
  keepNewest(dir, "pre-migrate-", 3);
  expect(readdirSync(dir).sort()).toEqual(["other.db", "pre-migrate-2.db", "pre-migrate-3.db", "pre-migrate-4.db"]);
});
