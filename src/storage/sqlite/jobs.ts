import type { Database } from "bun:sqlite";
import { Job } from "../../core/job.ts";
import type { JobRepository } from "../repository.ts";
import type { Batch } from "./batch.ts";
import { readDoc } from "./doc.ts";

export class SqliteJobs implements JobRepository {
  constructor(
    private db: Database,
    private batch: Batch,
  ) {}
  create(job: Job): void {
    this.batch.begin();
    this.db
      .query("INSERT INTO jobs (id, created_at, doc) VALUES (?, ?, ?)")
      .run(job.id, job.created_at, JSON.stringify(job));
  }
  get(id: string): Job | undefined {
    const row = this.db.query<{ doc: string }, [string]>("SELECT doc FROM jobs WHERE id = ?").get(id);
    return row ? readDoc(Job, row.doc, `job ${id}`) : undefined;
  }
  all(): Job[] {
    return this.db
      .query<{ doc: string }, []>("SELECT doc FROM jobs ORDER BY created_at DESC, id")
      .all()
      .map((r) => readDoc(Job, r.doc, "job"));
  }
}
