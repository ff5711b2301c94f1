// Storage backends side by side: with N tasks stored (default 100,000), inserts per second (durable, in group
// commits of 1,000), and the p99 of the last page of the newest-first listing (offset N-100, limit 100) and of a
// metadata-filtered listing, at the repository level the REST handlers call. One JSON line per backend.
//   bun scripts/bench/storage.ts [--tasks N] [--backends sqlite,memory,postgres] [--postgres-url URL]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { example } from "../../src/cli/examples.ts";
import { newTask, TaskCreate } from "../../src/core/task.ts";
import { openKv } from "../../src/storage/kv/index.ts";
import { openMemory } from "../../src/storage/memory/index.ts";
import { openPostgres } from "../../src/storage/postgres/index.ts";
import type { Storage } from "../../src/storage/repository.ts";
import { openSqlite } from "../../src/storage/sqlite/index.ts";
import { startPostgres } from "../../test/postgres.ts";

const { values } = parseArgs({
  options: {
    tasks: { type: "string", default: "100000" },
    backends: { type: "string", default: "sqlite,kv,memory,postgres" },
    "postgres-url": { type: "string" },
  },
});
const N = Number(values.tasks);
const tmp = (await import("node:fs")).mkdtempSync(join((await import("node:os")).tmpdir(), "propeller-bench-"));
const module = Buffer.from(example("add")).toString("base64");

function p99(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!.toFixed(2);
}

async function measure(backend: string, store: Storage): Promise<void> {
  const base = Date.parse("2026-01-01T00:00:00Z");
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    const created = new Date(base + i).toISOString();
    const t = newTask(
      crypto.randomUUID(),
      TaskCreate.parse({ name: "add", file: module, metadata: { team: i % 10 === 0 ? "edge" : "core" } }),
      created,
    );
    store.tasks.create(t);
    if (i % 1000 === 999) await store.durable();
  }
  await store.durable();
  const insertPerS = Math.round(N / ((performance.now() - started) / 1000));
  const time = (fn: () => void) => {
    const out: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      fn();
      out.push(performance.now() - t0);
    }
    return out;
  };
  const last = time(() => store.tasks.list(N - 100, 100));
  const filtered = time(() => store.tasks.list(0, 100, { team: "edge" }));
  console.log(
    JSON.stringify({
      backend,
      tasks: N,
      insert_per_s: insertPerS,
      list_p99_ms: p99(last),
      filtered_list_p99_ms: p99(filtered),
    }),
  );
  await store.close();
}

for (const backend of values.backends.split(",")) {
  if (backend === "sqlite") await measure(backend, openSqlite(join(tmp, "bench.db")));
  else if (backend === "kv") await measure(backend, openKv(join(tmp, "kv")));
  else if (backend === "memory") await measure(backend, openMemory());
  else if (backend === "postgres") {
    const pg = values["postgres-url"] ? undefined : await startPostgres();
    try {
      const url = values["postgres-url"] ?? (await pg!.database("bench"));
      await measure(backend, await openPostgres(url));
    } finally {
      await pg?.stop();
    }
  } else throw new Error(`unknown backend ${backend} (sqlite, kv, memory, postgres)`);
}
