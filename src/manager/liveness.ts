import type { AliveMsg, CreateMsg } from "../core/messages.ts";
import { Folded } from "../core/once-per.ts";
import { tag } from "../log.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { PropletRegistry } from "./proplets.ts";

const log = tag("manager");

// Liveness: what proplets' discovery, heartbeats and Last Wills mean for the work. A proplet that arrives or comes
// back may take queued tasks; one that goes offline or silent has its runs settled by the dispatcher; a heartbeat
// that no longer lists a task means the proplet lost that run (a crash and restart, say).

export class Liveness {
  /** Proplets said to be unreachable, so it is said once per outage. */
  private saidUnreachable = new Set<string>();
  /**
   * A proplet's comings and goings, said folded per proplet and kind: two processes sharing one identity take each
   * other's place every second, and each change was a line, four a second.
   */
  private folds = new Folded(10_000);

  constructor(
    private proplets: PropletRegistry,
    private dispatcher: Dispatcher,
    private partitionGraceMs = 0,
  ) {}

  /** Discovery: a new or returning proplet may take queued work. */
  onCreate(msg: CreateMsg): void {
    const r = this.proplets.onCreate(msg);
    const said = `proplet ${msg.proplet_id} ${r.known ? "reconnected" : "registered"} (${r.name})`;
    if (r.again) log.debug(`${said}: announced again`);
    else this.say(msg.proplet_id, "came", said);
    this.dispatcher.drain();
  }

  /** A heartbeat settles the runs the proplet no longer lists; the offline message settles all of them. */
  onAlive(msg: AliveMsg): void {
    const r = this.proplets.onAlive(msg);
    if (!r) return;
    if (r.offline) {
      const lost = `proplet lost: ${msg.proplet_id} went offline`;
      // Ours says which tasks it still runs when it shuts down on purpose: the others are over at once. A Last
      // Will (the broker lost the connection) or an upstream proplet says nothing: a cut link looks the same as a
      // crash from here, so the runs wait out the partition grace (sweep).
      if (msg.tasks || this.partitionGraceMs === 0) {
        this.say(msg.proplet_id, "offline", `proplet ${msg.proplet_id} went offline`);
        this.dispatcher.settleLost(msg.proplet_id, lost, msg.tasks && new Set(msg.tasks), false);
      } else this.unreachable(msg.proplet_id, "went offline");
      return;
    }
    if (r.back || this.saidUnreachable.delete(msg.proplet_id))
      this.say(msg.proplet_id, "back", `proplet ${msg.proplet_id} is back`);
    if (msg.offline_from && msg.offline_to)
      this.say(
        msg.proplet_id,
        "cut",
        `proplet ${msg.proplet_id} was cut off from ${msg.offline_from} to ${msg.offline_to}`,
      );
    // Runs to settle only where some are tracked (most heartbeats come from proplets that run nothing).
    if (msg.tasks && this.proplets.taskCount(msg.proplet_id) > 0) {
      // By the name a person knows it by (tasks list shows names), its id beside it.
      const name = this.proplets.get(msg.proplet_id)?.name;
      const who = name && name !== msg.proplet_id ? `${name} (${msg.proplet_id})` : msg.proplet_id;
      const reason = `interrupted: proplet ${who} is no longer running the task`;
      const runs = msg.runs?.length === msg.tasks.length ? msg.runs : undefined;
      this.dispatcher.settleLost(msg.proplet_id, reason, new Set(msg.tasks), true, runs && listedRuns(msg.tasks, runs));
    }
    if (r.wasDown) this.dispatcher.drain();
  }

  /**
   * A proplet's identity revoked: the broker has cut it off and it may not come back, so its runs are over now,
   * retried elsewhere where retries remain (they waited out the partition grace as for a cut link: 5 minutes and
   * more, the reason saying it stopped sending heartbeats).
   */
  onRevoked(id: string): void {
    if (!this.proplets.has(id)) return;
    this.proplets.wentOffline(id);
    log.info(`proplet ${id} revoked: its runs are settled now`);
    this.dispatcher.settleLost(id, `proplet lost: ${id} was revoked`, undefined, false);
  }

  /** Periodic sweep: proplets whose heartbeats stopped, and the runs they had; stale proplets forgotten. */
  check(): void {
    const { lost, unreachable, forgotten } = this.proplets.sweep(Date.now());
    const silent = this.proplets.staleRemovalMs / 1000;
    for (const id of forgotten) log.info(`proplet ${id} forgotten: no heartbeat for ${silent}s`);
    for (const id of unreachable) this.unreachable(id, "stopped sending heartbeats");
    for (const id of lost) {
      this.saidUnreachable.delete(id);
      const after = this.partitionGraceMs
        ? ` (unreachable longer than the ${this.partitionGraceMs / 1000}s partition grace)`
        : "";
      this.dispatcher.settleLost(id, `proplet lost: ${id} stopped sending heartbeats${after}`);
    }
  }

  private say(id: string, kind: string, line: string, level: "info" | "warn" = "info"): void {
    const more = this.folds.say(`${id}\n${kind}`, Date.now());
    if (more !== undefined) log[level](`${line}${more}`);
  }

  private unreachable(id: string, why: string): void {
    if (this.saidUnreachable.has(id)) return;
    this.saidUnreachable.add(id);
    const n = this.proplets.taskCount(id);
    this.say(
      id,
      "unreachable",
      `proplet ${id} is unreachable (${why}): its ${n} run(s) are kept for up to ${this.partitionGraceMs / 1000}s in case it is only cut off`,
      "warn",
    );
  }
}

/** The runs a heartbeat lists; a task listed without a run id (started by a manager that sends none) counts whole. */
function listedRuns(tasks: string[], runs: string[]): { runs: Set<string>; wholeTasks: Set<string> } {
  return {
    runs: new Set(runs.filter(Boolean)),
    wholeTasks: new Set(tasks.filter((_, i) => !runs[i])),
  };
}
