import type { Task } from "../core/task.ts";
import { compareTasks, type TaskFind, taskMatches } from "../core/task-query.ts";
import type { ListResult } from "./repository.ts";

// `GET /tasks`'s finding over tasks held as documents (the memory and key-value backends): one pass keeps the
// matches, and only the matches are sorted. SQLite says the same in SQL (sqlite/find.ts); the storage contract
// tests hold every backend to the same answers.

export function findTasks(
  all: Iterable<Omit<Task, "file">>,
  f: TaskFind,
  offset: number,
  limit: number,
): ListResult<Omit<Task, "file">> {
  const hits: Omit<Task, "file">[] = [];
  for (const t of all) if (taskMatches(t, f)) hits.push(t);
  hits.sort(compareTasks(f.sort, f.order));
  return { total: hits.length, items: hits.slice(offset, offset + limit) };
}
