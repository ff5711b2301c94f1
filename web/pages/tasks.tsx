import { useEffect, useState } from "preact/hooks";
import { reorderingShown } from "../../src/core/reorder.ts";
import { ago, STATES } from "../api.ts";
import { type Sort, Table } from "../table.tsx";
import { Loading, StateText, useApi } from "../ui.tsx";
import { CreateTask } from "./task-create.tsx";

export interface TaskView {
  id: string;
  name: string;
  state: number;
  status: string;
  kind?: string;
  proplet_id?: string;
  /** The name of the proplet it runs (or ran) on: its identity's, for a provisioned one. */
  proplet_name?: string;
  results?: unknown;
  /** In a list, a long result is its first characters (the whole at /tasks/{id}/results). */
  results_preview?: string;
  results_truncated?: boolean;
  results_size?: number;
  /** Why a task that should run does not yet (no proplet with a label it requires, …). */
  waiting_reason?: string;
  error?: string;
  inputs?: string[];
  env?: Record<string, string>;
  schedule?: string;
  timezone?: string;
  paused?: boolean;
  workflow_id?: string;
  workflow_name?: string;
  priority?: number;
  image_url?: string;
  created_at: string;
  updated_at?: string;
  daemon?: boolean;
  metadata?: Record<string, unknown>;
}

/**
 * A result as text. A guest's text may hold characters that reorder what follows them (an unclosed U+202E read the
 * rest of its Result field backwards): they are shown written out, `\u202e` (core/reorder.ts).
 */
export const show = (v: unknown) =>
  reorderingShown(v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));
const PAGE = 25;

/** The result column: the result, or its preview marked as cut. */
const preview = (t: TaskView) =>
  t.results_truncated ? `${show(t.results_preview).slice(0, 80)}…` : show(t.results).slice(0, 80);

/**
 * Every task, found by the server (GET /tasks: state, name or id, metadata, sorted by a column's header): the
 * filters see every task, not the page shown. FL round tasks are left out unless asked for; an experiment's page
 * lists its rounds.
 */
export function TasksPage() {
  const [offset, setOffset] = useState(0);
  // A link may ask for a state (`#/tasks?state=Failed`, from the overview's counters), and for FL rounds too (the
  // counters count every task: "13 completed" led to a list of 10).
  const asked = new URLSearchParams(location.hash.split("?")[1]);
  const [state, setState] = useState(() => asked.get("state") ?? "");
  const [text, setText] = useState("");
  const [search, setSearch] = useState("");
  const [rounds, setRounds] = useState(() => asked.get("include_rounds") === "true");
  const [sort, setSort] = useState<Sort>({ key: "created_at", order: "desc" });
  const [meta, setMeta] = useState("");
  const [filter, setFilter] = useState<string>();
  // The search follows typing, once it pauses.
  useEffect(() => {
    const t = setTimeout(() => {
      setSearch(text.trim());
      setOffset(0);
    }, 300);
    return () => clearTimeout(t);
  }, [text]);
  const params = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
  if (state) params.set("state", state);
  if (search) params.set("q", search);
  if (rounds) params.set("include_rounds", "true");
  if (sort.key !== "created_at" || sort.order !== "desc") {
    params.set("sort", sort.key);
    params.set("order", sort.order);
  }
  if (filter) params.set("metadata", filter);
  const r = useApi<{ tasks: TaskView[]; total: number }>(`/tasks?${params}`, (e) => e.type === "task");
  const [filterError, setFilterError] = useState<string>();
  const rows = r.data?.tasks ?? [];
  const narrowed = state || search || filter;
  return (
    <>
      <h1>Tasks</h1>
      <CreateTask onCreated={r.reload} />
      <h2>All tasks</h2>
      <form
        class="grid"
        aria-label="Find tasks"
        onSubmit={(e) => {
          e.preventDefault();
          const pairs = meta
            .split(",")
            .map((p) => p.trim())
            .filter(Boolean);
          const obj: Record<string, string> = {};
          for (const p of pairs) {
            const [k, ...v] = p.split("=");
            if (!k || v.length === 0) return setFilterError(`metadata filter: "${p}" is not KEY=VALUE`);
            obj[k] = v.join("=");
          }
          setFilterError(undefined);
          setOffset(0);
          setSearch(text.trim());
          setFilter(pairs.length ? JSON.stringify(obj) : undefined);
        }}
      >
        <label>
          Search (name or id)
          <input
            type="search"
            value={text}
            maxLength={200}
            onInput={(e) => setText(e.currentTarget.value)}
            placeholder="report"
          />
        </label>
        <label>
          State
          <select
            value={state}
            onChange={(e) => {
              setState(e.currentTarget.value);
              setOffset(0);
            }}
          >
            <option value="">any</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Metadata filter (KEY=VALUE, …)
          <input value={meta} onInput={(e) => setMeta(e.currentTarget.value)} placeholder="team=edge" />
        </label>
        <label>
          <span>
            <input
              type="checkbox"
              checked={rounds}
              onChange={(e) => {
                setRounds(e.currentTarget.checked);
                setOffset(0);
              }}
            />{" "}
            Show FL round tasks
          </span>
        </label>
        <button type="submit">Filter</button>
      </form>
      {filterError && <p class="error">{filterError}</p>}
      <Loading ready={!!r.data} error={r.error}>
        <Table
          rows={rows}
          rowKey={(t) => t.id}
          sort={sort}
          onSort={(next) => {
            setSort(next);
            setOffset(0);
          }}
          columns={[
            {
              head: "Name",
              sort: "name",
              cell: (t) => (
                <>
                  <a href={`#/tasks/${encodeURIComponent(t.id)}`}>{t.name}</a>{" "}
                  <span class="muted">{t.id.slice(0, 8)}</span>
                  {t.workflow_id && (
                    <div class="muted">
                      in{" "}
                      <a href={`#/workflows/${encodeURIComponent(t.workflow_id)}`}>
                        {t.workflow_name ?? t.workflow_id.slice(0, 8)}
                      </a>
                    </div>
                  )}
                  {t.schedule && (
                    <div class="muted">
                      cron <code>{t.schedule}</code>
                      {t.timezone ? ` ${t.timezone}` : ""}
                      {t.paused ? " · paused" : ""}
                    </div>
                  )}
                </>
              ),
            },
            {
              head: "State",
              sort: "state",
              cell: (t) => (
                <>
                  <StateText state={t.state} status={t.status} />
                  {t.waiting_reason && <div class="muted waiting">{t.waiting_reason}</div>}
                  {t.error && <div class="error">{reorderingShown(t.error)}</div>}
                </>
              ),
            },
            {
              head: "Proplet",
              cell: (t) =>
                t.proplet_id ? (
                  <a href={`#/proplets/${encodeURIComponent(t.proplet_id)}`}>
                    {t.proplet_name ?? t.proplet_id.slice(0, 8)}
                  </a>
                ) : (
                  ""
                ),
              wide: true,
            },
            { head: "Result", cell: preview, wide: true },
            { head: "Created", sort: "created_at", cell: (t) => ago(t.created_at), wide: true },
          ]}
        />
        <div class="actions">
          <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
            Previous
          </button>
          <span class="muted" data-testid="task-count">
            {r.data && r.data.total > 0
              ? `${offset + 1}–${Math.min(offset + PAGE, r.data.total)} of ${r.data.total}`
              : narrowed
                ? "no task matches"
                : "no tasks"}
          </span>
          <button
            type="button"
            disabled={!r.data || offset + PAGE >= r.data.total}
            onClick={() => setOffset(offset + PAGE)}
          >
            Next
          </button>
        </div>
      </Loading>
    </>
  );
}
