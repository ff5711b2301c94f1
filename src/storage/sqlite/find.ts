import type { Database } from "bun:sqlite";
import { TaskState } from "../../core/states.ts";
import { FL_ROUND_PREFIX, type TaskFind, type TaskSort } from "../../core/task-query.ts";
import { ZERO_TIME } from "../../core/time.ts";

// `GET /tasks`'s finding in SQL: what core/task-query.ts's `taskMatches` and `compareTasks` say, over the row's
// columns (state, created_at, job_id, workflow_id) and its document (sqlite/compact.ts leaves a field at its
// default out, so the defaults come back with coalesce, and keeps times as milliseconds after created_at). A filter
// on states other than Completed walks tasks_state_open, which holds every task but the Completed ones
// (NOT_COMPLETED); Completed ones are counted as all less the others; the rounds are counted on tasks_rounds.

const NAME = "json_extract(doc, '$.name')";
/** A time field as the task has it (compact.ts's TIME_KEYS): milliseconds after created_at, or the text itself. */
const TIME_SQL = (k: string) =>
  `CASE WHEN json_type(doc, '$.${k}') = 'integer' THEN strftime('%Y-%m-%dT%H:%M:%fZ', julianday(created_at) + json_extract(doc, '$.${k}') / 86400000.0) ELSE json_extract(doc, '$.${k}') END`;
/** The condition of the partial index tasks_state_open (migrations.ts), written as the index has it so SQLite uses it. */
export const NOT_COMPLETED = `state != ${TaskState.Completed}`;
const COLUMN: Record<TaskSort, string> = {
  created_at: "created_at",
  updated_at: `coalesce(${TIME_SQL("updated_at")}, ${TIME_SQL("finish_time")}, '${ZERO_TIME}')`,
  name: NAME,
  state: "state",
  priority: "coalesce(json_extract(doc, '$.priority'), 50)",
};
/** `ROUND = 'fl-round-'` is the condition of the partial index tasks_rounds (migrations.ts): the rounds are counted on it. */
const ROUND = `substr(${NAME}, 1, ${FL_ROUND_PREFIX.length})`;
const KIND = `CASE WHEN json_extract(doc, '$.kind') = 'federated' OR ${ROUND} = '${FL_ROUND_PREFIX}' THEN 'federated' ELSE 'standard' END`;

export interface FoundRow {
  id: string;
  state: number;
  created_at: string;
  doc: string;
  file: null;
}

export function findRows(
  db: Database,
  f: TaskFind,
  offset: number,
  limit: number,
): { total: number; rows: FoundRow[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (f.kind) {
    where.push(`${KIND} = ?`);
    params.push(f.kind);
  }
  if (f.job_id !== undefined) {
    where.push("job_id = ?");
    params.push(f.job_id);
  }
  if (f.workflow_id !== undefined) {
    where.push("workflow_id = ?");
    params.push(f.workflow_id);
  }
  if (f.proplets) {
    where.push(`json_extract(doc, '$.proplet_id') IN (${f.proplets.map(() => "?").join(",")})`);
    params.push(...f.proplets);
  }
  if (f.q) {
    // instr, not LIKE: `%` and `_` in what a person types are text, not wildcards.
    where.push(`(instr(lower(${NAME}), lower(?)) > 0 OR instr(id, ?) > 0)`);
    params.push(f.q, f.q);
  }
  if (f.name !== undefined) {
    where.push(`${NAME} = ?`);
    params.push(f.name);
  }
  for (const [k, v] of Object.entries(f.metadata ?? {})) {
    where.push("EXISTS (SELECT 1 FROM task_meta m WHERE m.task_id = tasks.id AND m.key = ? AND m.value = ?)");
    params.push(k, v);
  }
  const counted = (clauses: string[], states: readonly number[] = []) =>
    db
      .query<{ n: number }, (string | number)[]>(
        `SELECT count(*) AS n FROM tasks${clauses.length ? ` WHERE ${clauses.join(" AND ")}` : ""}`,
      )
      .get(...states, ...params)!.n;
  const states = f.states ? `state IN (${f.states.map(() => "?").join(",")})` : undefined;
  const withCompleted = f.states?.includes(TaskState.Completed) ?? false;
  // The tasks in the states asked for. With Completed among them, all less those in the other states: the index
  // holds no Completed task, and counting them one by one read every row.
  const count = (clauses: string[]) => {
    if (!f.states) return counted(clauses);
    if (!withCompleted) return counted([states!, NOT_COMPLETED, ...clauses], f.states);
    return (
      counted(clauses) -
      counted([`state NOT IN (${f.states.map(() => "?").join(",")})`, NOT_COMPLETED, ...clauses], f.states)
    );
  };
  // Rounds left out: the total is every match less the rounds among them, two counts an index answers (a count
  // of "not a round" would read every task's document).
  const isRound = `${ROUND} = '${FL_ROUND_PREFIX}'`;
  const total = f.rounds ? count(where) : count(where) - count([...where, isRound]);
  if (!f.rounds) where.push(`${ROUND} != '${FL_ROUND_PREFIX}'`);
  if (states) {
    where.unshift(...(withCompleted ? [states] : [states, NOT_COMPLETED]));
    params.unshift(...f.states!);
  }
  const w = where.length ? `WHERE ${where.join(" AND ")}` : "";
  const dir = f.order === "asc" ? "" : " DESC";
  const order =
    f.sort === "created_at" ? `created_at${dir}, id${dir}` : `${COLUMN[f.sort]}${dir}, created_at${dir}, id${dir}`;
  const rows = db
    .query<FoundRow, (string | number)[]>(
      `SELECT id, state, created_at, doc, NULL AS file FROM tasks ${w} ORDER BY ${order} LIMIT ? OFFSET ?`,
    )
    .all(...params, limit, offset);
  return { total, rows };
}
