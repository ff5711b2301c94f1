/** One start of a task. Cron firings, retries and restarts each make a new run; none overwrites another. */
export interface Run {
  run_id: string;
  task_id: string;
  attempt: number;
  state: number;
  status: string;
  proplet_id?: string;
  started_at: string;
  finished_at?: string;
  results?: unknown;
  error?: string;
}
