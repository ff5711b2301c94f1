import type { Hono } from "hono";
import { QueryFlag } from "../../core/page.ts";
import { isTerminal, stateName } from "../../core/states.ts";
import type { Task } from "../../core/task.ts";
import type { OutputChunk, TaskOutput } from "../output.ts";
import type { Tasks } from "../tasks.ts";
import { query } from "./http.ts";
import { frameOf, frames, sseFeed } from "./sse.ts";
import type { Streams } from "./streams.ts";

const ending = (t: Task) => ({
  state: t.state,
  status: stateName(t.state),
  ...(t.error ? { error: t.error } : {}),
});

/**
 * `GET /tasks/{id}/logs`: what is kept of a running task's output. With `follow=true`, Server-Sent Events: the
 * kept pieces, then each new one as `output`, and `end` with the state when the task reaches a final one.
 */
export function logRoutes(app: Hono, tasks: Tasks, output: TaskOutput, streams: Streams): void {
  // A piece of output is encoded once for all its followers; the end, with the task's state when it comes.
  const piece = frames((chunk: OutputChunk) => ({ event: "output", data: JSON.stringify(chunk) }));
  app.get("/tasks/:id/logs", (c) => {
    const follow = query(c, "follow", QueryFlag);
    const task = tasks.get(tasks.resolveId(c.req.param("id")));
    const kept = output.read(task);
    if (!follow) return c.json({ task_id: task.id, ...ending(task), ...kept });
    const first: (OutputChunk | null)[] = [...kept.chunks];
    if (isTerminal(task.state)) first.push(null);
    return sseFeed(
      c,
      streams,
      first,
      (push) => (isTerminal(task.state) ? () => {} : output.follow(task, push)),
      (chunk) =>
        chunk ? piece(chunk) : frameOf({ event: "end", data: JSON.stringify(ending(tasks.get(task.id))), last: true }),
    );
  });
}
