// Storage backends side by side. For each: N tasks stored (default 100,000; every tenth with team=edge),
// inserts per second (durable, a commit every 1,000), then the p99 of the last page of the newest-first listing
// (offset N-100, limit 100) and of a metadata-filtered listing (team=edge, 100) — at the repository level the REST
// handlers call, and through REST (`GET /tasks…` on a real serve opened on the filled store, with auth, so JSON and
// HTTP are counted), and through REST the middle page (offset N/2), the deepest walk from either end. The memory backend cannot be handed to another process: it has no REST figures (null).
// One JSON line per backend.
//   bun scripts/bench/storage.ts [--tasks N] [--backends sqlite,kv,memory,postgres] [--postgres-url URL]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { example } from "../../src/cli/examples.ts";
import { newTask, TaskCreate } from "../../src/core/task.ts";
import { openKv } from "../../src/storage/kv/index.ts";
import { openMemory } from "../../src/storage/memory/index.ts";
import { storageLocation } from "../../src/storage/open.ts";
import { openPostgres } from "../../src/storage/postgres/index.ts";
import type { Storage, StorageKind } from "../../src/storage/repository.ts";
import { openSqlite } from "../../src/storage/sqlite/index.ts";
import { startPostgres } from "../../test/postgres.ts";
import { scriptArgs } from "../args.ts";
import { adminToken, authHeaders, freePort, serveArgs, waitForHealth } from "./lib.ts";

const { values } = scriptArgs(import.meta.path, {
  options: {
    tasks: { type: "string", default: "100000" },
    backends: { type: "string", default: "sqlite,kv,memory,postgres" },
    "postgres-url": { type: "string" },
  },
});
const N = Number(values.tasks);
const module = Buffer.from(example("add")).toString("base64");
const FILTER = encodeURIComponent(JSON.stringify({ team: "edge" }));

function p99(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!.toFixed(2);
}

/** The p99 of 50 calls, after 5 that warm up (the first call compiles statements and code). */
async function timed(fn: () => unknown): Promise<number> {
  for (let i = 0; i < 5; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return p99(out);
}

async function fill(store: Storage): Promise<number> {
  const base = Date.parse("2026-01-01T00:00:00Z");
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    const body = TaskCreate.parse({ name: "add", file: module, metadata: { team: i % 10 === 0 ? "edge" : "core" } });
    store.tasks.create(newTask(crypto.randomUUID(), body, new Date(base + i).toISOString()));
    if (i % 1000 === 999) await store.durable();
  }
  await store.durable();
  return Math.round(N / ((performance.now() - started) / 1000));
}

/** A serve on the filled store: the p99 of both listings through REST. */
async function overRest(kind: StorageKind, dataDir: string, postgresUrl?: string) {
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const extra = ["--storage", kind, "--no-local-proplet", ...(postgresUrl ? ["--postgres-url", postgresUrl] : [])];
  const serve = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "..", "..", "src", "main.ts"),
      ...serveArgs(httpPort, mqttPort, dataDir, extra),
    ],
    {
      stdout: "inherit",
      stderr: "inherit",
    },
  );
  try {
    const url = `http://127.0.0.1:${httpPort}`;
    await waitForHealth(url);
    const headers = authHeaders(adminToken(dataDir));
    const get = async (path: string) => {
      const res = await fetch(`${url}${path}`, { headers });
      if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
      await res.arrayBuffer();
    };
    return {
      rest_list_p99_ms: await timed(() => get(`/tasks?offset=${N - 100}&limit=100`)),
      rest_filtered_list_p99_ms: await timed(() => get(`/tasks?metadata=${FILTER}&limit=100`)),
      rest_middle_list_p99_ms: await timed(() => get(`/tasks?offset=${N / 2}&limit=100`)),
    };
  } finally {
    serve.kill("SIGTERM");
    await serve.exited;
  }
}

async function measure(kind: StorageKind, store: Storage, dataDir?: string, postgresUrl?: string): Promise<void> {
  const insertPerS = await fill(store);
  const list = await timed(() => store.tasks.list(N - 100, 100));
  const filtered = await timed(() => store.tasks.list(0, 100, { team: "edge" }));
  await store.close();
  const rest = dataDir
    ? await overRest(kind, dataDir, postgresUrl)
    : { rest_list_p99_ms: null, rest_filtered_list_p99_ms: null, rest_middle_list_p99_ms: null };
  console.log(
    JSON.stringify({
      backend: kind,
      tasks: N,
      insert_per_s: insertPerS,
      list_p99_ms: list,
      filtered_list_p99_ms: filtered,
      ...rest,
    }),
  );
}

for (const backend of values.backends.split(",") as StorageKind[]) {
  const dataDir = mkdtempSync(join(tmpdir(), "propeller-bench-"));
  const where = storageLocation(backend, { dataDir });
  if (backend === "sqlite") await measure(backend, openSqlite(where), dataDir);
  else if (backend === "kv") await measure(backend, openKv(where), dataDir);
  else if (backend === "memory") await measure(backend, openMemory());
  else if (backend === "postgres") {
    const pg = values["postgres-url"] ? undefined : await startPostgres();
    try {
      const url = values["postgres-url"] ?? (await pg!.database("bench"));
      await measure(backend, await openPostgres(url), dataDir, url);
    } finally {
      await pg?.stop();
    }
  } else throw new Error(`unknown backend ${backend} (sqlite, kv, memory, postgres)`);
}
