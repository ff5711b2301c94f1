import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, tempDir } from "../helpers.ts";

// The archive's header names serve's local proplet (local_proplet_id) and restore writes it into the data dir.
// serve's local proplet logs in with an internal identity that shadows a stored one of the same id (manager/
// identities.ts verifyEntity): a header naming a registered (remote) proplet made the restored serve's local
// proplet take that proplet's id, its pinned tasks and its place on the broker, and locked the real one out.

const now = new Date().toISOString();
const archive = (local: string, records: object[]) =>
  [
    { format: "propeller-archive", version: 1, source: "sqlite", created_at: now, local_proplet_id: local },
    ...records,
    { end: true, records: records.length },
  ]
    .map((l) => `${JSON.stringify(l)}\n`)
    .join("");
const remote = { id: "edge-1", kind: "proplet", name: "edge-1", key_hash: "ab".repeat(32), created_at: now };

test("a header naming a registered proplet is not made serve's local proplet", () => {
  const file = join(tempDir(), "a.jsonl");
  writeFileSync(file, archive("edge-1", [{ k: "entity", v: remote }]));
  const dir = tempDir();
  const r = cli(["restore", file, "--data-dir", dir]);
  expect(r.code).toBe(0);
  expect(existsSync(join(dir, "local-proplet-id"))).toBe(false);
  expect(r.stderr).toContain("edge-1");
});

test("restore --force keeps the replaced store's local proplet id beside the store set aside", () => {
  const dir = tempDir();
  const first = join(tempDir(), "a.jsonl");
  writeFileSync(first, archive("old-local", [{ k: "entity", v: { ...remote, id: "e1", name: "e1" } }]));
  expect(cli(["restore", first, "--data-dir", dir]).code).toBe(0);
  expect(readFileSync(join(dir, "local-proplet-id"), "utf8")).toBe("old-local");
  const second = join(tempDir(), "b.jsonl");
  writeFileSync(second, archive("new-local", [{ k: "entity", v: { ...remote, id: "e2", name: "e2" } }]));
  const r = cli(["restore", second, "--data-dir", dir, "--force"]);
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, "local-proplet-id"), "utf8")).toBe("new-local");
  const kept = readdirSync(dir).filter((n) => n.startsWith("local-proplet-id.before-restore-"));
  expect(kept.length).toBe(1);
  expect(readFileSync(join(dir, kept[0]!), "utf8")).toBe("old-local");
});
