import { between, type Rand, weighted } from "./prng.ts";
import { kill9, running, signal, terminate } from "./procs.ts";
import type { Profile, Site } from "./site.ts";

// The fault schedule: decided from the seed alone before the run starts (kinds, targets, hold times, gaps), so a
// seed replays the same schedule; the faults run one after another, each undone (restarted, continued, restored)
// before the next gap begins.

export type FaultKind =
  | "kill9-manager"
  | "term-manager"
  | "kill9-proplet"
  | "term-proplet"
  | "stop-proplet"
  | "cut-link"
  | "restart-broker";

export interface Fault {
  /** Seconds after the workload starts (a fault waits for the previous one to be undone). */
  at: number;
  kind: FaultKind;
  /** Which proplet (an index) for proplet and link faults. */
  target: number;
  /** How long the fault lasts before it is undone, ms. */
  holdMs: number;
}

export function schedule(r: Rand, profile: Profile, seconds: number, proplets: number): Fault[] {
  const kinds: [FaultKind, number][] = [
    ["kill9-manager", 3],
    ["term-manager", 1],
    ["kill9-proplet", 2],
    ["term-proplet", 1],
    ["stop-proplet", 2],
    ["cut-link", 3],
    ...(profile === "ha" ? ([["restart-broker", 1]] as [FaultKind, number][]) : []),
  ];
  const out: Fault[] = [];
  // The first fault comes early and is the one issue 26 began with: kill -9 of the active manager.
  let at = between(r, 3, 6);
  let first = true;
  while (at < seconds - 5) {
    const kind = first ? "kill9-manager" : weighted(r, kinds);
    first = false;
    const holdMs =
      kind === "stop-proplet"
        ? between(r, 1000, 8000)
        : kind === "cut-link"
          ? between(r, 1000, 12_000)
          : between(r, 300, 3000);
    out.push({ at, kind, target: between(r, 0, proplets - 1), holdMs });
    at += holdMs / 1000 + between(r, 1, 5);
  }
  return out;
}

/** Applies one fault and undoes it; returns a line for the log. */
export async function apply(site: Site, f: Fault): Promise<string> {
  const p = site.proplets[f.target]!;
  switch (f.kind) {
    case "kill9-manager":
    case "term-manager": {
      const m = (await waitActive(site)) ?? site.managers[0]!;
      m.held = true;
      try {
        if (m.p) {
          if (f.kind === "kill9-manager") await kill9(m.p.proc);
          else await terminate(m.p.proc);
        }
        await Bun.sleep(f.holdMs);
        await site.startManager(m);
      } finally {
        m.held = false;
      }
      return `${f.kind} ${m.name}`;
    }
    case "kill9-proplet":
    case "term-proplet": {
      p.held = true;
      try {
        if (p.p) {
          if (f.kind === "kill9-proplet") await kill9(p.p.proc);
          else await terminate(p.p.proc);
        }
        await Bun.sleep(f.holdMs);
        await site.startProplet(p);
      } finally {
        p.held = false;
      }
      return `${f.kind} ${p.id}`;
    }
    case "stop-proplet": {
      if (p.p && running(p.p.proc)) signal(p.p.proc, "SIGSTOP");
      await Bun.sleep(f.holdMs);
      if (p.p) signal(p.p.proc, "SIGCONT");
      return `${f.kind} ${p.id}`;
    }
    case "cut-link": {
      p.link.cut();
      await Bun.sleep(f.holdMs);
      p.link.restore();
      return `${f.kind} ${p.id}`;
    }
    case "restart-broker": {
      await site.stopBroker();
      await Bun.sleep(f.holdMs);
      await site.startBroker();
      return f.kind;
    }
  }
}

/** The active manager, waiting up to 20 s for one (a fault right after a take-over waits for it to finish). */
async function waitActive(site: Site) {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    const m = await site.active();
    if (m) return m;
    await Bun.sleep(200);
  }
  return undefined;
}
