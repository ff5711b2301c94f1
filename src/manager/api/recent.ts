import type { Hono } from "hono";
import { z } from "zod";
import { RATE_SAMPLES_MAX, type RateSample } from "../../core/rates.ts";
import { RECENT_EVENTS_MAX, type RecentEvents } from "../recent-events.ts";
import { query } from "./http.ts";

/** `?limit=`: a whole number within the ring's bound (more is refused, not silently cut). */
const limitOf = (max: number, dflt: number) =>
  z.coerce
    .number({ error: "give a whole number" })
    .int("give a whole number")
    .min(1, "at least 1")
    .max(max, `at most ${max}`)
    .default(dflt);

/**
 * What the console's overview shows on arrival, both bounded rings in memory: `GET /events/recent` (the last live
 * events, newest first; metrics samples left out) and `GET /stats/rates` (the manager's own counters as per-second
 * rates over fixed intervals, oldest first, with the interval in seconds).
 */
export function recentRoutes(
  app: Hono,
  recent: RecentEvents,
  rates?: { intervalMs: number; ring: { samples(limit: number): RateSample[] } },
): void {
  app.get("/events/recent", (c) => {
    const limit = query(c, "limit", limitOf(RECENT_EVENTS_MAX, 50));
    return c.json({ events: recent.list(limit) });
  });
  app.get("/stats/rates", (c) => {
    const limit = query(c, "limit", limitOf(RATE_SAMPLES_MAX, RATE_SAMPLES_MAX));
    return c.json({ interval_s: (rates?.intervalMs ?? 0) / 1000, samples: rates?.ring.samples(limit) ?? [] });
  });
}
