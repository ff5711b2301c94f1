import type { Hono } from "hono";
import { invalid } from "../../core/errors.ts";
import { EVENT_TYPES, type EventType, type ManagerEvent } from "../../core/events.ts";
import type { Channel } from "../events.ts";
import { frames, sseFeed } from "./sse.ts";
import type { Streams } from "./streams.ts";

/**
 * `GET /events`: live events as Server-Sent Events, filtered by `types`, `task_id` and `proplet_id` (an id or a
 * proplet's name, which `idOf` resolves).
 */
export function eventRoutes(
  app: Hono,
  live: Channel<ManagerEvent>,
  streams: Streams,
  idOf: (proplet: string) => string = (p) => p,
): void {
  const format = frames((e: ManagerEvent) => ({ event: e.type, data: JSON.stringify(e) }));
  app.get("/events", (c) => {
    const typesText = c.req.query("types");
    const types = typesText
      ? typesText
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean)
      : EVENT_TYPES;
    const unknown = types.filter((t) => !EVENT_TYPES.includes(t as EventType));
    if (unknown.length) {
      throw invalid(`types: unknown event type ${unknown.join(", ")} (use ${EVENT_TYPES.join(", ")})`);
    }
    const taskId = c.req.query("task_id");
    const propletId = c.req.query("proplet_id");
    // Resolved at each event: a proplet named before it first registers is followed once it does.
    const ofProplet = (id: string | undefined) =>
      id !== undefined && (id === propletId || id === idOf(propletId ?? ""));
    const wanted = (e: ManagerEvent) =>
      types.includes(e.type) &&
      (!taskId || ("task_id" in e && e.task_id === taskId)) &&
      (!propletId || ("proplet_id" in e && ofProplet(e.proplet_id)));
    return sseFeed<ManagerEvent>(c, streams, [], (push) => live.subscribe((e) => wanted(e) && push(e)), format);
  });
}
