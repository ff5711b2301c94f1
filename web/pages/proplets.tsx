import { useEffect, useState } from "preact/hooks";
import { ago } from "../api.ts";
import { Chart } from "../chart.tsx";
import { subscribe } from "../live.ts";
import { Table } from "../table.tsx";
import { Loading, useApi, useClock } from "../ui.tsx";

/** The server's view of liveness changes with time, not only with events: asked again every `ms`. */
function useEvery(ms: number, fn: () => void): void {
  useEffect(() => {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  }, []);
}

interface Proplet {
  id: string;
  name: string;
  alive: boolean;
  task_count: number;
  last_alive_at?: string;
  metadata: Record<string, unknown>;
}

export function PropletsPage() {
  useClock(1000);
  const r = useApi<{ proplets: Proplet[]; total: number }>(
    "/proplets?limit=1000",
    (e) => e.type === "proplet" || e.type === "run",
  );
  useEvery(10000, r.reload);
  return (
    <>
      <h1>Proplets</h1>
      <Loading ready={!!r.data} error={r.error}>
        <Table
          rows={r.data?.proplets ?? []}
          rowKey={(p) => p.id}
          columns={[
            { head: "Name", cell: (p) => <a href={`#/proplets/${encodeURIComponent(p.id)}`}>{p.name}</a> },
            {
              head: "State",
              cell: (p) => <span class={p.alive ? "alive" : "down"}>{p.alive ? "alive" : "down"}</span>,
            },
            { head: "Runtime", cell: (p) => String(p.metadata.wasm_runtime ?? ""), wide: true },
            { head: "Load", cell: (p) => `${p.task_count} / ${String(p.metadata.max_tasks ?? "∞")}` },
            { head: "Last heartbeat", cell: (p) => <span title={p.last_alive_at}>{ago(p.last_alive_at)}</span> },
          ]}
        />
        <p class="muted">{r.data?.total ?? 0} proplet(s)</p>
      </Loading>
    </>
  );
}

interface Sample {
  timestamp?: string;
  cpu_metrics?: { percent?: number };
  memory_metrics?: { rss_bytes?: number };
}

const SAMPLES = 120;

export function PropletPage(p: { id: string }) {
  useClock(1000);
  const path = `/proplets/${encodeURIComponent(p.id)}`;
  const r = useApi<Proplet>(path, (e) => e.proplet_id === p.id);
  useEvery(5000, r.reload);
  const m = useApi<{ metrics: Sample[] }>(`${path}/metrics?limit=${SAMPLES}`);
  const h = useApi<{ history: string[] }>(`${path}/alive-history?limit=20`, (e) => e.proplet_id === p.id);
  // Samples that arrived since the page loaded, from the live stream of this proplet's metrics events.
  const [fresh, setFresh] = useState<Sample[]>([]);
  useEffect(
    () =>
      subscribe(`types=metrics&proplet_id=${encodeURIComponent(p.id)}`, ["metrics"], (e) => {
        if (e.kind !== "proplet") return;
        const sample = { ...(e.sample as Sample), timestamp: e.at };
        setFresh((list) => [...list, sample].slice(-SAMPLES));
      }),
    [p.id],
  );
  const loaded = [...(m.data?.metrics ?? [])].reverse().filter((s) => s.timestamp);
  const newest = loaded.at(-1)?.timestamp ?? "";
  const samples = [...loaded, ...fresh.filter((s) => s.timestamp! > newest)].slice(-SAMPLES);
  const x = samples.map((s) => Date.parse(s.timestamp!) / 1000);
  return (
    <>
      <h1>Proplet {r.data?.name ?? p.id}</h1>
      <Loading ready={!!r.data} error={r.error}>
        {r.data && (
          <dl>
            <dt>Id</dt>
            <dd>{r.data.id}</dd>
            <dt>State</dt>
            <dd class={r.data.alive ? "alive" : "down"}>{r.data.alive ? "alive" : "down"}</dd>
            <dt>Tasks running</dt>
            <dd>{r.data.task_count}</dd>
            <dt>Last heartbeat</dt>
            <dd data-testid="last-heartbeat" title={r.data.last_alive_at}>
              {ago(r.data.last_alive_at)}
            </dd>
            {Object.entries(r.data.metadata).map(([k, v]) => (
              <>
                <dt key={`k-${k}`}>{k}</dt>
                <dd key={`v-${k}`}>{typeof v === "string" ? v : JSON.stringify(v)}</dd>
              </>
            ))}
          </dl>
        )}
      </Loading>
      <h2>CPU and memory</h2>
      <p class="muted" data-testid="sample-count">
        {samples.length} sample(s){samples.length ? `, the last ${ago(samples.at(-1)!.timestamp)}` : ""}
      </p>
      <Chart
        title="CPU %"
        x={x}
        series={[{ label: "cpu %", values: samples.map((s) => s.cpu_metrics?.percent ?? null) }]}
      />
      <Chart
        title="Memory (MiB)"
        x={x}
        series={[{ label: "rss MiB", values: samples.map((s) => (s.memory_metrics?.rss_bytes ?? 0) / 1048576) }]}
      />
      <h2>Alive history</h2>
      <ul>
        {(h.data?.history ?? []).map((t) => (
          <li key={t}>
            {t} <span class="muted">({ago(t)})</span>
          </li>
        ))}
      </ul>
    </>
  );
}
