import type { Journal } from "../journal.ts";
import type { Storage, StorageKind } from "../repository.ts";
import {
  MemoryEntities,
  MemoryFl,
  MemoryJobs,
  MemoryMetrics,
  MemoryProplets,
  MemoryRuns,
  MemoryTokens,
} from "./others.ts";
import { MemoryTasks } from "./tasks.ts";

/**
 * Everything in this process's memory. Alone (`serve --storage memory`) it keeps nothing across a restart; with
 * a journal it is the read side of a backend whose durable copy is elsewhere (PostgreSQL).
 */
export function openMemory(journal?: Journal, kind: StorageKind = "memory"): Storage {
  return {
    kind,
    tasks: new MemoryTasks(journal),
    proplets: new MemoryProplets(journal),
    runs: new MemoryRuns(journal),
    jobs: new MemoryJobs(journal),
    metrics: new MemoryMetrics(journal),
    tokens: new MemoryTokens(journal),
    entities: new MemoryEntities(journal),
    fl: new MemoryFl(journal),
    durable: () => journal?.durable() ?? Promise.resolve(),
    // Memory always takes a write; a journal's backend (PostgreSQL) replaces this with its own.
    probe: () => Promise.resolve(),
    close: () => {},
  };
}
