import { useEffect, useState } from "preact/hooks";
import type { RateSample } from "../../src/core/rates.ts";
import { reorderingShown } from "../../src/core/reorder.ts";
import { ago, api } from "../api.ts";
import { ChartTable } from "../chart.tsx";
import { type LiveEvent, onRecent, recentEvents, seedRecent } from "../live.ts";
import { Loading, useApi, useClock } from "../ui.tsx";

interface Stats {
  proplets: { alive: number; total: number };
  tasks: Record<string, number>;
  queue_depth: number;
  experiments: number;
}

/** Names for the ids an event carries: proplets from the registry, tasks from the task events seen. */
interface Names {
  proplet: (id: unknown) => string;
  task: (id: unknown) => string;
}

function describe(e: LiveEvent, n: Names): string {
  switch (e.type) {
    case "task":
      return `task ${e.name ?? n.task(e.task_id)} → ${e.status}${e.proplet_id ? ` on ${n.proplet(e.proplet_id)}` : ""}${e.error ? `: ${reorderingShown(e.error)}` : ""}`;
    case "run":
      return `run of ${n.task(e.task_id)} ${e.phase}${e.status ? ` ${e.status}` : ""}${e.proplet_id ? ` on ${n.proplet(e.proplet_id)}` : ""}`;
    case "proplet":
      return `proplet ${e.name ?? n.proplet(e.proplet_id)} ${e.alive ? "up" : "down"}`;
    case "fl":
      return `FL ${e.experiment_id} round ${e.index}/${e.rounds} ${e.state} (${e.num_updates}/${e.k_of_n} updates)`;
    case "trust":
      return `trust policy refused ${e.module}: ${e.reason}`;
    default:
      return e.type;
  }
}

/** A line over the last samples, as wide as its card; its figures are in the card's text. */
function Spark(p: { values: number[] }) {
  if (p.values.length < 2) return null;
  const max = Math.max(...p.values, 1e-9);
  const step = 100 / (p.values.length - 1);
  const points = p.values.map((v, i) => `${(i * step).toFixed(1)},${(30 - (v / max) * 28).toFixed(1)}`).join(" ");
  return (
    <svg class="spark" viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true">
      <polyline
        points={points}
        fill="none"
        stroke="currentColor"
        stroke-width="1.5"
        vector-effect="non-scaling-stroke"
      />
    </svg>
  );
}

const RATES: { key: keyof RateSample; label: string; unit: string; href?: string }[] = [
  { key: "started_per_s", label: "runs started", unit: "/s", href: "#/tasks?state=Running&include_rounds=true" },
  { key: "completed_per_s", label: "runs completed", unit: "/s", href: "#/tasks?state=Completed&include_rounds=true" },
  { key: "failed_per_s", label: "runs failed", unit: "/s", href: "#/tasks?state=Failed&include_rounds=true" },
  { key: "queue_depth", label: "queued for a slot", unit: "", href: "#/tasks?state=Scheduled&include_rounds=true" },
  { key: "mqtt_messages_per_s", label: "MQTT messages", unit: "/s" },
  { key: "clients", label: "MQTT clients connected", unit: "", href: "#/proplets" },
];

/** The manager's own counters over the last minutes (`GET /stats/rates`), fetched again every interval. */
function Rates() {
  const [data, setData] = useState<{ interval_s: number; samples: RateSample[] }>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    let live = true;
    const load = () =>
      api<{ interval_s: number; samples: RateSample[] }>("GET", "/stats/rates?limit=60").then(
        (d) => {
          if (!live) return;
          setData(d);
          setError(undefined);
        },
        (e: Error) => live && setError(e.message),
      );
    load();
    const t = setInterval(load, 5000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, []);
  const samples = data?.samples ?? [];
  const last = samples.at(-1);
  const minutes = data ? Math.round((samples.length * data.interval_s) / 60) : 0;
  return (
    <section aria-labelledby="rates-h">
      <h2 id="rates-h">Rates</h2>
      {error && <p class="error">{error}</p>}
      {!last ? (
        <p class="muted">No samples yet: the manager samples its counters every few seconds.</p>
      ) : (
        <>
          <p class="muted">
            Over the last {minutes < 1 ? `${samples.length * (data?.interval_s ?? 0)} s` : `${minutes} min`}, every{" "}
            {data?.interval_s} s.
          </p>
          <div class="cards" data-testid="rates">
            {RATES.map((r) => {
              const values = samples.map((s) => Number(s[r.key] ?? 0));
              const now = last[r.key];
              const body = (
                <>
                  <div class="n" data-testid={`rate-${r.key}`}>
                    {now === null ? "–" : `${now}${r.unit}`}
                  </div>
                  {r.label}
                  <Spark values={values} />
                </>
              );
              return (
                <div class="card" key={r.key}>
                  {r.href ? (
                    <a href={r.href} class="cardlink">
                      {body}
                    </a>
                  ) : (
                    body
                  )}
                </div>
              );
            })}
          </div>
          {/* The lines' text alternative: the samples they draw, as the other charts have. */}
          <ChartTable
            title="Rates"
            x={samples.map((s) => Date.parse(s.at) / 1000)}
            series={RATES.map((r) => ({
              label: `${r.label}${r.unit}`,
              values: samples.map((s) => (s[r.key] === null ? null : Number(s[r.key]))),
            }))}
          />
        </>
      )}
    </section>
  );
}

export function OverviewPage() {
  const stats = useApi<Stats>("/stats", () => true);
  const [events, setEvents] = useState<LiveEvent[]>(recentEvents());
  const [seedError, setSeedError] = useState<string>();
  useClock();
  useEffect(() => {
    const off = onRecent(() => setEvents(recentEvents()));
    seedRecent().then(
      () => setSeedError(undefined),
      (e: Error) => setSeedError(e.message),
    );
    return off;
  }, []);
  const proplets = useApi<{ proplets: { id: string; name: string }[] }>(
    "/proplets?limit=1000",
    (e) => e.type === "proplet",
  );
  const propletNames = new Map((proplets.data?.proplets ?? []).map((p) => [p.id, p.name]));
  const taskNames = new Map<unknown, string>();
  for (const e of events) if (e.type === "task" && e.name) taskNames.set(e.task_id, e.name);
  const short = (id: unknown) => String(id).slice(0, 8);
  const names: Names = {
    proplet: (id) => propletNames.get(String(id)) ?? short(id),
    task: (id) => taskNames.get(id) ?? short(id),
  };
  const s = stats.data;
  return (
    <>
      <h1>Overview</h1>
      <Loading ready={!!s} error={stats.error}>
        {s && (
          <div class="cards">
            <div class="card">
              {/* Only the figure is the link, named by what it counts: the nav's "Proplets" and "Tasks" stay unique. */}
              <a
                href="#/proplets"
                class="cardlink"
                aria-label={`${s.proplets.alive} / ${s.proplets.total} proplets alive`}
              >
                <div class="n" data-testid="proplets-alive">
                  {s.proplets.alive} / {s.proplets.total}
                </div>
              </a>
              proplets alive
            </div>
            {["Running", "Scheduled", "Completed", "Failed"].map((k) => (
              <div class="card" key={k}>
                <a
                  href={`#/tasks?state=${k}&include_rounds=true`}
                  class="cardlink"
                  aria-label={`${s.tasks[k] ?? 0} ${k.toLowerCase()}`}
                >
                  <div class="n">{s.tasks[k] ?? 0}</div>
                </a>
                tasks {k.toLowerCase()}
              </div>
            ))}
            <div class="card">
              <div class="n">{s.queue_depth}</div>
              queued for a slot
            </div>
            <div class="card">
              <a href="#/fl" class="cardlink" aria-label={`${s.experiments} running`}>
                <div class="n">{s.experiments}</div>
              </a>
              FL experiments running
            </div>
          </div>
        )}
      </Loading>
      <Rates />
      <h2>Recent events</h2>
      {seedError && <p class="error">{seedError}</p>}
      {events.length === 0 ? (
        <p class="muted">Nothing yet: events appear here as they happen.</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: the list scrolls, and a keyboard can scroll only what takes focus (axe: scrollable-region-focusable)
        <ul class="events" aria-label="Recent events" tabIndex={0}>
          {events.map((e, i) => (
            <li key={`${e.at}-${i}`}>
              <span class="muted" title={e.at}>
                {ago(e.at)}
              </span>{" "}
              {describe(e, names)}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
