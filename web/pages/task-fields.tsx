import type { ComponentChildren } from "preact";
import { api } from "../api.ts";
import { invokeOf, type Requirements } from "../task-body.ts";
import { Act, useApi } from "../ui.tsx";
import { show, type TaskView } from "./tasks.tsx";

// What a task is beyond its state: where it may run, its limits and retries, its schedule; and the control that
// pauses or resumes a schedule.

/** A task's fields the page shows; the list's row has fewer. */
export interface TaskDetail extends TaskView {
  requirements?: Requirements;
  timeout_s?: number;
  max_retries?: number;
  retry_backoff_s?: number;
  misfire_policy?: "skip" | "run_once";
  overlap_policy?: "skip" | "allow";
  next_run?: string;
  paused?: boolean;
  workflow_id?: string;
  workflow_name?: string;
  job_id?: string;
  max_memory_mb?: number;
  cli_args?: string[] | null;
  monitoring_profile?: { enabled?: boolean; interval?: number };
}

const ZERO = "0001-01-01T00:00:00Z";

/** Requirements as a person writes them: `gpu=true, arch aarch64, memory ≥ 512 MiB`. */
export function requirementsText(r: TaskDetail["requirements"]): string {
  if (!r) return "";
  const parts = Object.entries(r.labels ?? {}).map(([k, v]) => `${k}=${v}`);
  if (r.runtime) parts.push(`runtime ${r.runtime}`);
  if (r.arch) parts.push(`arch ${r.arch}`);
  if (r.tee) parts.push(`TEE ${r.tee}`);
  if (r.min_memory_mb) parts.push(`memory ≥ ${r.min_memory_mb} MiB`);
  return parts.join(", ");
}

/** A time in the viewer's words and, beside it, in the schedule's own zone when that differs. */
function when(iso: string | undefined, tz?: string): string {
  if (!iso || iso.startsWith("0001-") || iso === ZERO) return "";
  const d = new Date(iso);
  const here = d.toLocaleString();
  if (!tz) return here;
  try {
    const there = d.toLocaleString(undefined, { timeZone: tz });
    return there === here ? here : `${here} (${there} ${tz})`;
  } catch {
    return here;
  }
}

function Row(p: { term: string; id?: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{p.term}</dt>
      <dd data-testid={p.id}>{p.children}</dd>
    </>
  );
}

/** The task's limits, placement and schedule: every line only when the task sets it (or a default applies). */
export function TaskFields(p: { t: TaskDetail }) {
  const t = p.t;
  const retries = t.max_retries
    ? `up to ${t.max_retries}, the first after ${t.retry_backoff_s ?? 1} s, doubling (at most 300 s)`
    : "none";
  const invoke = invokeOf(t.cli_args);
  return (
    <>
      {invoke && (
        <Row term="Function" id="task-function">
          <code>{invoke}</code>
        </Row>
      )}
      <Row term="Requirements" id="task-requirements">
        {requirementsText(t.requirements) || <span class="muted">none: any proplet</span>}
      </Row>
      <Row term="Timeout" id="task-timeout">
        {t.timeout_s ? `${t.timeout_s} s` : <span class="muted">none</span>}
      </Row>
      <Row term="Retries" id="task-retries">
        {retries}
      </Row>
      {t.max_memory_mb !== undefined && <Row term="Memory cap">{t.max_memory_mb} MiB</Row>}
      {t.schedule && (
        <>
          <Row term="Schedule" id="task-schedule">
            <code>{t.schedule}</code>
            {t.paused ? " (paused)" : ""}
          </Row>
          <Row term="Time zone" id="task-timezone">
            {t.timezone || "UTC"}
          </Row>
          <Row term="Next run" id="task-next-run">
            {t.paused ? <span class="muted">paused</span> : when(t.next_run, t.timezone) || "—"}
          </Row>
          <Row term="Missed runs" id="task-misfire">
            {t.misfire_policy === "run_once" ? "run once on return (run_once)" : "skipped (skip)"}
          </Row>
          <Row term="Overlap">
            {t.overlap_policy === "allow" ? "a run may start while one runs" : "skipped while one runs"}
          </Row>
        </>
      )}
      {t.workflow_id && (
        <Row term="Workflow">
          <a href={`#/workflows/${encodeURIComponent(t.workflow_id)}`}>{t.workflow_name ?? t.workflow_id}</a>
        </Row>
      )}
      {t.job_id && (
        <Row term="Job">
          <JobName id={t.job_id} />
        </Row>
      )}
      <Row term="Priority">{t.priority ?? 50}</Row>
      <Row term="Env">{show(t.env)}</Row>
      <Row term="Metadata">{show(t.metadata)}</Row>
    </>
  );
}

/** A job by its given name (its id shortened until that is known), linking to its page. */
function JobName(p: { id: string }) {
  const j = useApi<{ name?: string }>(`/jobs/${encodeURIComponent(p.id)}`);
  return (
    <a href={`#/jobs/${encodeURIComponent(p.id)}`}>
      {j.data?.name ?? p.id.slice(0, 8)} <span class="muted">{p.id.slice(0, 8)}</span>
    </a>
  );
}

/** Pause or resume a scheduled task's schedule (`POST /tasks/{id}/pause`, `/resume`); nothing for other tasks. */
export function PauseResume(p: { t: TaskDetail; done: () => void }) {
  if (!p.t.schedule) return null;
  const to = p.t.paused ? "resume" : "pause";
  return (
    <Act
      label={p.t.paused ? "Resume schedule" : "Pause schedule"}
      run={async () => {
        await api("POST", `/tasks/${encodeURIComponent(p.t.id)}/${to}`);
        p.done();
      }}
    />
  );
}
