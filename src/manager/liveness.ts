import type { AliveMsg, CreateMsg } from "../core/messages.ts";
import { tag } from "../log.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { PropletRegistry } from "./proplets.ts";

const log = tag("manager");

// Liveness: what proplets' discovery, heartbeats and Last Wills mean for the work. A proplet that arrives or comes
// back may take queued tasks; one that goes offline or silent has its runs settled by the dispatcher; a heartbeat
// that no longer lists a task means the proplet lost that run (a crash and restart, say).

export class Liveness {
  constructor(
    private proplets: PropletRegistry,
    private dispatcher: Dispatcher,
  ) {}

  /** Discovery: a new or returning proplet may take queued work. */
  onCreate(msg: CreateMsg): void {
    const r = this.proplets.onCreate(msg);
    log.info(`proplet ${msg.proplet_id} ${r.known ? "reconnected" : "registered"} (${r.name})`);
    this.dispatcher.drain();
  }

  /** A heartbeat settles the runs the proplet no longer lists; the offline message settles all of them. */
  onAlive(msg: AliveMsg): void {
    const r = this.proplets.onAlive(msg);
    if (!r) return;
    if (r.offline) {
      log.info(`proplet ${msg.proplet_id} went offline`);
      this.dispatcher.settleLost(msg.proplet_id, `proplet lost: ${msg.proplet_id} went offline`, undefined, false);
      return;
    }
    if (r.back) log.info(`proplet ${msg.proplet_id} is back`);
    if (msg.tasks) {
      const reason = `interrupted: proplet ${msg.proplet_id} is no longer running the task`;
      this.dispatcher.settleLost(msg.proplet_id, reason, new Set(msg.tasks));
    }
    if (r.wasDown) this.dispatcher.drain();
  }

  /** Periodic sweep: proplets whose heartbeats stopped, and the runs they had; stale proplets forgotten. */
  check(): void {
    const { lost, forgotten } = this.proplets.sweep(Date.now());
    const silent = this.proplets.staleRemovalMs / 1000;
    for (const id of forgotten) log.info(`proplet ${id} forgotten: no heartbeat for ${silent}s`);
    for (const id of lost) this.dispatcher.settleLost(id, `proplet lost: ${id} stopped sending heartbeats`);
  }
}
