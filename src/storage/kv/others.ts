import type { Key, RootDatabase } from "lmdb";
import type { Entity, Token } from "../../core/identity.ts";
import type { Job } from "../../core/job.ts";
import type { Proplet } from "../../core/proplet.ts";
import type { Run } from "../../core/run.ts";
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
import { END } from "./tasks.ts";

// Runs, jobs, proplets, metrics, tokens and entities in LMDB, keyed so their listings are range reads.

/** A counter kept under `key`, for sequence numbers. */
function next(db: RootDatabase, key: Key): number {
  const n = ((db.get(key) as number | undefined) ?? 0) + 1;
  db.put(key, n);
  return n;
}

const values = <T>(db: RootDatabase, start: Key[], o: { reverse?: boolean; offset?: number; limit?: number } = {}) =>
  Array.from(
    db.getRange(o.reverse ? { start: [...start, END], end: start, ...o } : { start, end: [...start, END], ...o }),
  ).map((e) => e.value as T);

export class KvRuns implements RunRepository {
  constructor(private db: RootDatabase) {}
  create(run: Run): void {
    this.db.transactionSync(() => {
      this.db.put(["r", run.task_id, run.started_at, next(this.db, ["n", "run"])], run);
    });
  }
  private find(taskId: string, runId: string): { key: Key; value: Run } | undefined {
    for (const e of this.db.getRange({ start: ["r", taskId], end: ["r", taskId, END] })) {
      if ((e.value as Run).run_id === runId) return { key: e.key, value: e.value as Run };
    }
    return undefined;
  }
  get(taskId: string, runId: string): Run | undefined {
    return this.find(taskId, runId)?.value;
  }
  update(run: Run): boolean {
    return this.db.transactionSync(() => {
      const found = this.find(run.task_id, run.run_id);
      if (found) this.db.put(found.key, run);
      return found !== undefined;
    });
  }
  listByTask(taskId: string, offset: number, limit: number): ListResult<Run> {
    const total = this.db.getKeysCount({ start: ["r", taskId], end: ["r", taskId, END] });
    return { total, items: values<Run>(this.db, ["r", taskId], { reverse: true, offset, limit }) };
  }
}

export class KvJobs implements JobRepository {
  constructor(private db: RootDatabase) {}
  create(job: Job): void {
    this.db.transactionSync(() => {
      this.db.put(["j", job.id], job);
    });
  }
  get(id: string): Job | undefined {
    return this.db.get(["j", id]) as Job | undefined;
  }
  all(): Job[] {
    return values<Job>(this.db, ["j"]).sort(byCreated(true));
  }
}

export class KvProplets implements PropletRepository {
  constructor(private db: RootDatabase) {}
  upsert(p: Proplet): void {
    this.db.transactionSync(() => {
      this.db.put(["p", p.id], p);
    });
  }
  get(id: string): Proplet | undefined {
    return this.db.get(["p", id]) as Proplet | undefined;
  }
  delete(id: string): boolean {
    return this.db.transactionSync(() => {
      if (this.db.get(["p", id]) === undefined) return false;
      this.db.remove(["p", id]);
      return true;
    });
  }
  all(): Proplet[] {
    return values<Proplet>(this.db, ["p"]);
  }
}

export class KvMetrics extends OwnerMetrics implements MetricsRepository {
  constructor(private db: RootDatabase) {
    super();
  }
  protected add(kind: "proplet" | "task", owner: string, at: string, sample: unknown): void {
    this.db.transactionSync(() => {
      this.db.put(["m", kind, owner, at, next(this.db, ["n", "metric"])], sample);
      const n = this.db.getKeysCount({ start: ["m", kind, owner], end: ["m", kind, owner, END] });
      if (n <= METRICS_RETENTION) return;
      const oldest = this.db.getKeys({
        start: ["m", kind, owner],
        end: ["m", kind, owner, END],
        limit: n - METRICS_RETENTION,
      });
      for (const k of Array.from(oldest)) this.db.remove(k);
    });
  }
  protected list(kind: "proplet" | "task", owner: string, offset: number, limit: number): ListResult<unknown> {
    const total = this.db.getKeysCount({ start: ["m", kind, owner], end: ["m", kind, owner, END] });
    return { total, items: values<unknown>(this.db, ["m", kind, owner], { reverse: true, offset, limit }) };
  }
}

/** Tokens and entities: oldest first. */
class Docs<T extends { id: string; created_at: string }> {
  constructor(
    private db: RootDatabase,
    private prefix: string,
  ) {}
  create(v: T): void {
    this.db.transactionSync(() => {
      if (this.db.get([this.prefix, v.id]) !== undefined) throw new Error(`${v.id} already exists`);
      this.db.put([this.prefix, v.id], v);
    });
  }
  update(v: T): void {
    this.db.transactionSync(() => {
      if (this.db.get([this.prefix, v.id]) !== undefined) this.db.put([this.prefix, v.id], v);
    });
  }
  get(id: string): T | undefined {
    return this.db.get([this.prefix, id]) as T | undefined;
  }
  all(): T[] {
    return values<T>(this.db, [this.prefix]).sort(byCreated());
  }
}

export class KvTokens extends Docs<Token> implements TokenRepository {
  constructor(db: RootDatabase) {
    super(db, "k");
  }
}

export class KvEntities extends Docs<Entity> implements EntityRepository {
  constructor(db: RootDatabase) {
    super(db, "e");
  }
}

/**
 * Federated learning's documents under ["fl", kind, id], as text. (A transactionSync callback must not return
 * put's promise: the transaction then never settles and closing the store hangs — measured.)
 */
export class KvFl implements FlRepository {
  constructor(private db: RootDatabase) {}
  put(kind: FlKind, id: string, doc: string): void {
    this.db.transactionSync(() => {
      this.db.put(["fl", kind, id], doc);
    });
  }
  get(kind: FlKind, id: string): string | undefined {
    return this.db.get(["fl", kind, id]) as string | undefined;
  }
  ids(kind: FlKind): string[] {
    return Array.from(this.db.getKeys({ start: ["fl", kind], end: ["fl", kind, END] })).map(
      (k) => (k as Key[])[2] as string,
    );
  }
  delete(kind: FlKind, id: string): boolean {
    return this.db.transactionSync(() => {
      if (this.db.get(["fl", kind, id]) === undefined) return false;
      this.db.remove(["fl", kind, id]);
      return true;
    });
  }
}
