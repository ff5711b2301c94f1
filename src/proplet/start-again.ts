import type { StartMsg } from "../core/messages.ts";
import { fields, tag } from "../log.ts";
import type { PropletLink } from "./link.ts";

const log = tag("proplet");

// A start for a run this proplet's record knows (run-record.ts): a manager that took over, restarted, or met a
// heartbeat that no longer lists the run sends its start again, same run id, and the proplet answers from its
// record instead of running the guest a second time.

/** How far the manager's clock may be from this proplet's for a run's start time to be compared with its record. */
const CLOCK_SKEW_MS = 60_000;

/** Why a run sent before this proplet's record begins ends failed: it may have run here, or not. */
export const CANNOT_TELL =
  "interrupted: the proplet cannot tell whether it ran (its run record begins after the run was started)";

/** Why a run received before this proplet stopped has no result: it ends failed (then retried per its retries). */
export const CRASHED_MID_RUN = "interrupted: the proplet stopped while the run was in progress";

/**
 * Answers a start this proplet received before (`true`), or says it is new (`false`: record it and run it).
 * Finished: its result again (the kept one; failed when it is no longer kept). Received and never finished (killed
 * mid-run): a failed result. Its result still in the outbox: it goes out with the next flush.
 */
export function startSeenBefore(msg: StartMsg, link: PropletLink, propletId: string): boolean {
  const run = msg.run_id;
  const seen = run ? link.record.get(run) : undefined;
  if (!run) return false;
  const about = fields({ task_id: msg.id, run_id: run, proplet_id: propletId });
  if (!seen) {
    // A start sent again for a run this record does not know: new only if the record would have it had it come
    // (a state dir wiped, or runs forgotten since, cannot say "never received").
    const sentAt = msg.sent_again ? Date.parse(msg.sent_again) : Number.NaN;
    if (!msg.sent_again || msg.latent || link.record.covers(sentAt, CLOCK_SKEW_MS)) return false;
    log.warn(`start sent again for a run this proplet cannot account for: ${CANNOT_TELL}`, about);
    link.record.received(run, msg.id);
    void link.publishResult({ task_id: msg.id, proplet_id: propletId, run_id: run, results: "", error: CANNOT_TELL });
    return true;
  }
  if (link.resultPending(run)) {
    log.info("start sent again for a run whose result waits in the outbox: sending it, not running it again", about);
    void link.flush();
    return true;
  }
  const result = (error: string) =>
    void link.publishResult({ task_id: msg.id, proplet_id: propletId, run_id: run, results: "", error });
  // A latent task's deployment runs nothing until invoked (each invocation answered on its own): deployed again.
  if (!seen.finished && msg.latent) return false;
  if (!seen.finished) {
    log.warn(`start sent again for a run this proplet received and never finished: ${CRASHED_MID_RUN}`, about);
    link.record.finished(run);
    result(CRASHED_MID_RUN);
    return true;
  }
  const kept = link.record.keptResult(run);
  if (kept) {
    log.info("start sent again for a run that finished here: its result sent again, the guest not run twice", about);
    try {
      void link.publishResult(JSON.parse(kept));
      return true;
    } catch {}
  }
  // An in-memory record (serve's local proplet) keeps no results: a repeat of a start is only ignored.
  if (!link.record.durable) {
    log.warn("start for a run that finished here already: ignored", about);
    return true;
  }
  log.warn("start sent again for a run that finished here; its result is no longer kept", about);
  result(`the run finished on proplet ${propletId}, but its result is no longer kept there`);
  return true;
}
