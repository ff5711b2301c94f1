import type { Entity, Token } from "../../core/identity.ts";
import type { Job } from "../../core/job.ts";
import type { Proplet } from "../../core/proplet.ts";
import type { Run } from "../../core/run.ts";
import type { Journal } from "../journal.ts";
import { byCreated, OwnerMetrics } from "../order.ts";
import type {
  EntityRepository,
  FlKind,
  FlRepository,
  JobRepository,
  ListResult,
  MetricsRepository,
  PropletRepository,
  RunRepository,
  TokenRepository,
} from "../repository.ts";
import { METRICS_RETENTION } from "../retention.ts";

// Runs, jobs, proplets, metrics, tokens and entities in maps, with the orders the SQL backends give.

const page = <T>(all: T[], offset: number, limit: number): ListResult<T> => ({
  total: all.length,
  items: all.slice(offset, offset + limit),
});

export class MemoryRuns implements RunRepository {
  /** Per task, in the order they were stored. */
  private byTask = new Map<string, Run[]>();
  constructor(private journal?: Journal) {}
  create(run: Run): void {
    const list = this.byTask.get(run.task_id) ?? [];
    list.push({ ...run });
    this.byTask.set(run.task_id, list);
    this.journal?.record({ kind: "run", run });
  }
  get(taskId: string, runId: string): Run | undefined {
    const r = this.byTask.get(taskId)?.find((x) => x.run_id === runId);
    return r && { ...r };
  }
  update(run: Run): boolean {
    const list = this.byTask.get(run.task_id) ?? [];
    const i = list.findIndex((r) => r.run_id === run.run_id);
    if (i < 0) return false;
    list[i] = { ...run };
    this.journal?.record({ kind: "run-update", run });
    return true;
  }
  listByTask(taskId: string, offset: number, limit: number): ListResult<Run> {
    // Newest start first; of two with the same start, the one stored last.
    const runs = [...(this.byTask.get(taskId) ?? [])].reverse();
    runs.sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0));
    return page(runs, offset, limit);
  }
}

export class MemoryJobs implements JobRepository {
  private byId = new Map<string, Job>();
  constructor(private journal?: Journal) {}
  create(job: Job): void {
    this.byId.set(job.id, { ...job });
    this.journal?.record({ kind: "job", job });
  }
  get(id: string): Job | undefined {
    const j = this.byId.get(id);
    return j && { ...j };
  }
  all(): Job[] {
    return [...this.byId.values()].sort(byCreated(true)).map((j) => ({ ...j }));
  }
}

export class MemoryProplets implements PropletRepository {
  private byId = new Map<string, Proplet>();
  constructor(private journal?: Journal) {}
  upsert(p: Proplet): void {
    this.byId.set(p.id, structuredClone(p));
    this.journal?.record({ kind: "proplet", proplet: p });
  }
  get(id: string): Proplet | undefined {
    const p = this.byId.get(id);
    return p && structuredClone(p);
  }
  delete(id: string): boolean {
    if (!this.byId.delete(id)) return false;
    this.journal?.record({ kind: "proplet-delete", id });
    return true;
  }
  all(): Proplet[] {
    return [...this.byId.keys()].sort().map((id) => structuredClone(this.byId.get(id)!));
  }
}

export class MemoryMetrics extends OwnerMetrics implements MetricsRepository {
  /** Per owner, newest first, at most METRICS_RETENTION. */
  private samples = new Map<string, { at: string; sample: unknown }[]>();
  constructor(private journal?: Journal) {
    super();
  }
  protected add(kind: "proplet" | "task", owner: string, at: string, sample: unknown): void {
    const key = `${kind}\u0000${owner}`;
    const list = this.samples.get(key) ?? [];
    let i = 0;
    while (i < list.length && list[i]!.at > at) i++;
    list.splice(i, 0, { at, sample });
    if (list.length > METRICS_RETENTION) list.length = METRICS_RETENTION;
    this.samples.set(key, list);
    const full = list.length === METRICS_RETENTION ? { keep_from: list.at(-1)!.at } : {};
    this.journal?.record({ kind: "metric", owner_kind: kind, owner, at, sample, ...full });
  }
  protected list(kind: "proplet" | "task", owner: string, offset: number, limit: number): ListResult<unknown> {
    return page(
      (this.samples.get(`${kind}\u0000${owner}`) ?? []).map((s) => s.sample),
      offset,
      limit,
    );
  }
}

/** Tokens and entities: oldest first. */
class Docs<T extends { id: string; created_at: string }> {
  private byId = new Map<string, T>();
  constructor(private written: (v: T) => void) {}
  create(v: T): void {
    if (this.byId.has(v.id)) throw new Error(`${v.id} already exists`);
    this.byId.set(v.id, structuredClone(v));
    this.written(v);
  }
  update(v: T): void {
    if (!this.byId.has(v.id)) return;
    this.byId.set(v.id, structuredClone(v));
    this.written(v);
  }
  get(id: string): T | undefined {
    const v = this.byId.get(id);
    return v && structuredClone(v);
  }
  all(): T[] {
    return [...this.byId.values()].sort(byCreated()).map((v) => structuredClone(v));
  }
}

export class MemoryTokens extends Docs<Token> implements TokenRepository {
  constructor(journal?: Journal) {
    super((token) => journal?.record({ kind: "token", token }));
  }
}

export class MemoryEntities extends Docs<Entity> implements EntityRepository {
  constructor(journal?: Journal) {
    super((entity) => journal?.record({ kind: "entity", entity }));
  }
}

export class MemoryFl implements FlRepository {
  private docs = new Map<FlKind, Map<string, string>>();
  constructor(private journal?: Journal) {}
  private of(kind: FlKind): Map<string, string> {
    const m = this.docs.get(kind) ?? new Map<string, string>();
    this.docs.set(kind, m);
    return m;
  }
  put(kind: FlKind, id: string, doc: string): void {
    this.of(kind).set(id, doc);
    this.journal?.record({ kind: "fl", fl_kind: kind, id, doc });
  }
  get(kind: FlKind, id: string): string | undefined {
    return this.of(kind).get(id);
  }
  ids(kind: FlKind): string[] {
    return [...this.of(kind).keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
  delete(kind: FlKind, id: string): boolean {
    const had = this.of(kind).delete(id);
    if (had) this.journal?.record({ kind: "fl-delete", fl_kind: kind, id });
    return had;
  }
}
