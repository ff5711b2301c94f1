import { useEffect, useState } from "preact/hooks";
import { ago } from "../api.ts";
import { type LiveEvent, onLive } from "../live.ts";
import { Loading, useApi, useClock } from "../ui.tsx";

interface Stats {
  proplets: { alive: number; total: number };
  tasks: Record<string, number>;
  queue_depth: number;
  experiments: number;
}

function describe(e: LiveEvent): string {
  switch (e.type) {
    case "task":
      return `task ${e.name ?? e.task_id} → ${e.status}${e.error ? `: ${e.error}` : ""}`;
    case "run":
      return `run of ${String(e.task_id).slice(0, 8)} ${e.phase}${e.status ? ` ${e.status}` : ""}`;
    case "proplet":
      return `proplet ${e.name ?? String(e.proplet_id).slice(0, 8)} ${e.alive ? "up" : "down"}`;
    case "fl":
      return `FL ${e.experiment_id} round ${e.index}/${e.rounds} ${e.state} (${e.num_updates}/${e.k_of_n} updates)`;
    default:
      return e.type;
  }
}

export function OverviewPage() {
  const stats = useApi<Stats>("/stats", () => true);
  const [events, setEvents] = useState<LiveEvent[]>([]);
  useClock();
  useEffect(() => onLive((e) => setEvents((list) => [e, ...list].slice(0, 50))), []);
  const s = stats.data;
  return (
    <>
      <h1>Overview</h1>
      <Loading ready={!!s} error={stats.error}>
        {s && (
          <div class="cards">
            <div class="card">
              <div class="n" data-testid="proplets-alive">
                {s.proplets.alive} / {s.proplets.total}
              </div>
              proplets alive
            </div>
            {["Running", "Scheduled", "Completed", "Failed"].map((k) => (
              <div class="card" key={k}>
                <div class="n">{s.tasks[k] ?? 0}</div>
                tasks {k.toLowerCase()}
              </div>
            ))}
            <div class="card">
              <div class="n">{s.queue_depth}</div>
              queued for a slot
            </div>
            <div class="card">
              <div class="n">{s.experiments}</div>
              FL experiments running
            </div>
          </div>
        )}
      </Loading>
      <h2>Recent events</h2>
      {events.length === 0 ? (
        <p class="muted">Nothing yet: events appear here as they happen.</p>
      ) : (
        <ul class="events" aria-label="Recent events">
          {events.map((e, i) => (
            <li key={`${e.at}-${i}`}>
              <span class="muted">{ago(e.at)}</span> {describe(e)}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
