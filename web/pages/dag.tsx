import { useState } from "preact/hooks";
import type { TaskView } from "./tasks.tsx";

// A workflow's graph: each task a node in its state's colour, in columns by depth; zoomed by buttons or by the
// keyboard (+, -, 0 on a focused node), scrolling inside its box at any size (a phone's 390 px included).

export interface GroupTask extends TaskView {
  depends_on?: string[];
  local_id?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A node's label: the id its file gave it (a fresh copy keeps it as `local_id`), else its name. */
export const label = (t: GroupTask): string => t.local_id ?? (UUID.test(t.id) ? t.name : t.id);

const FILL = ["#9aa0a6", "#9aa0a6", "#4c8df6", "#2e9d50", "#d93025", "#e3a008", "#e3a008"];

/** Columns by depth (longest path from a root), one row per task in its column. */
function Graph(p: { tasks: GroupTask[]; zoom: number }) {
  const byId = new Map(p.tasks.map((t) => [t.id, t]));
  const depth = new Map<string, number>();
  const depthOf = (t: GroupTask, seen = new Set<string>()): number => {
    if (depth.has(t.id)) return depth.get(t.id)!;
    if (seen.has(t.id)) return 0;
    seen.add(t.id);
    const parents = (t.depends_on ?? []).map((d) => byId.get(d)).filter((x): x is GroupTask => !!x);
    const d = parents.length ? 1 + Math.max(...parents.map((x) => depthOf(x, seen))) : 0;
    depth.set(t.id, d);
    return d;
  };
  const columns: GroupTask[][] = [];
  for (const t of p.tasks) {
    const d = depthOf(t);
    columns[d] = [...(columns[d] ?? []), t];
  }
  const W = 150;
  const H = 44;
  const pos = new Map<string, { x: number; y: number }>();
  for (const [c, col] of columns.entries()) {
    for (const [r, t] of (col ?? []).entries()) pos.set(t.id, { x: 10 + c * (W + 40), y: 10 + r * (H + 20) });
  }
  const width = 20 + columns.length * (W + 40);
  const height = 20 + Math.max(1, ...columns.map((c) => c?.length ?? 0)) * (H + 20);
  return (
    // Not an image (role="img" would hide its links): its nodes are links a keyboard reaches (Tab, in the order of
    // the columns), each named by its task and state for a screen reader; the lines are drawing only.
    <svg class="dag" viewBox={`0 0 ${width} ${height}`} width={Math.round(width * p.zoom)} aria-label="Workflow graph">
      {p.tasks.flatMap((t) =>
        (t.depends_on ?? []).map((d) => {
          const a = pos.get(d);
          const b = pos.get(t.id);
          return a && b ? <line key={`${d}-${t.id}`} x1={a.x + W} y1={a.y + H / 2} x2={b.x} y2={b.y + H / 2} /> : null;
        }),
      )}
      {columns.flat().map((t) => {
        const at = pos.get(t.id)!;
        return (
          <g key={t.id} data-task={label(t)} data-state={t.status}>
            <a href={`#/tasks/${encodeURIComponent(t.id)}`}>
              {/* Its name for a screen reader, and the whole label where the node cuts it. */}
              <title>{`${label(t)} ${t.status}`}</title>
              <rect x={at.x} y={at.y} width={W} height={H} rx={6} fill={FILL[t.state] ?? "#9aa0a6"} opacity={0.35} />
              <text x={at.x + 8} y={at.y + 18}>
                {label(t).slice(0, 20)}
              </text>
              <text x={at.x + 8} y={at.y + 35}>
                {t.status}
              </text>
            </a>
          </g>
        );
      })}
    </svg>
  );
}

const ZOOMS = [0.5, 0.75, 1, 1.25, 1.5, 2];

/** The graph with its zoom: 100% keeps the nodes' 12 px text (readable on a phone); the box scrolls. */
export function Dag(p: { tasks: GroupTask[] }) {
  const [i, setI] = useState(ZOOMS.indexOf(1));
  const zoom = ZOOMS[i]!;
  const by = (d: number) => setI((n) => Math.min(ZOOMS.length - 1, Math.max(0, n + d)));
  return (
    <div class="dag-box">
      <div class="actions zoom">
        <button type="button" aria-label="Zoom the graph out" disabled={i === 0} onClick={() => by(-1)}>
          −
        </button>
        <span aria-live="polite" data-testid="dag-zoom">
          {Math.round(zoom * 100)}%
        </span>
        <button type="button" aria-label="Zoom the graph in" disabled={i === ZOOMS.length - 1} onClick={() => by(1)}>
          +
        </button>
        <button type="button" disabled={zoom === 1} onClick={() => setI(ZOOMS.indexOf(1))}>
          Reset zoom
        </button>
      </div>
      {/* Keys pressed on a node (a link, reached by Tab) zoom too: + and - step, 0 resets. */}
      <section
        class="scroll"
        aria-label="Workflow graph: + and - zoom, 0 resets"
        onKeyDown={(e) => {
          if (e.key === "+" || e.key === "=") by(1);
          else if (e.key === "-" || e.key === "_") by(-1);
          else if (e.key === "0") setI(ZOOMS.indexOf(1));
          else return;
          e.preventDefault();
        }}
      >
        <Graph tasks={p.tasks} zoom={zoom} />
      </section>
    </div>
  );
}
