import type { ManagerEvent } from "../core/events.ts";
import { terminalSafe } from "./output.ts";

type FlEvent = Extract<ManagerEvent, { type: "fl" }>;

/** One round's progress as a line: `exp-1 round 3/20 (r-3) completed 3/3 updates → model v3 loss=0.41`. */
export function roundLine(e: FlEvent): string {
  const metrics = Object.entries(e.metrics ?? {})
    .map(([k, v]) => ` ${k}=${+v.toFixed(4)}`)
    .join("");
  const model = e.model_version !== undefined ? ` → model v${e.model_version}` : "";
  const error = e.error ? `: ${terminalSafe(e.error)}` : "";
  return `${e.experiment_id} round ${e.index}/${e.rounds} (${e.round_id}) ${e.state} ${e.num_updates}/${e.k_of_n} updates${model}${metrics}${error}`;
}
