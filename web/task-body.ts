import { chooseEntry } from "../src/core/wasm-call.ts";
import { inspect, type Signature } from "../src/core/wasm-info.ts";

// The create form's fields as the API's task body, and back (a task's fields prefilling the form for "re-run with
// edits"); the exports of a chosen module, so the function the task will call is chosen, not guessed. Pure but for
// reading FormData.

/** Where a task may run (the API's `requirements`). */
export interface Requirements {
  labels?: Record<string, string>;
  runtime?: string;
  arch?: string;
  tee?: string;
  min_memory_mb?: number;
}

export interface Prefill {
  name: string;
  /** The export named by `--invoke=` in its cli_args; empty: the task's name is the export, as upstream. */
  invoke: string;
  inputs: string;
  env: string;
  schedule: string;
  timezone: string;
  misfire: string;
  priority: string;
  timeout: string;
  retries: string;
  requirements: string;
  metadata: string;
  daemon: boolean;
}

export const EMPTY: Prefill = {
  name: "",
  invoke: "",
  inputs: "",
  env: "",
  schedule: "",
  timezone: "",
  misfire: "skip",
  priority: "",
  timeout: "",
  retries: "",
  requirements: "",
  metadata: "",
  daemon: false,
};

interface TaskLike {
  name: string;
  cli_args?: string[] | null;
  inputs?: string[];
  env?: Record<string, string>;
  schedule?: string;
  timezone?: string;
  misfire_policy?: string;
  priority?: number;
  timeout_s?: number;
  max_retries?: number;
  requirements?: Requirements;
  metadata?: Record<string, unknown>;
  daemon?: boolean;
}

/** Requirements' fields that are not labels, written as `key=value` lines like the labels. */
const FACTS = ["runtime", "arch", "tee", "min_memory_mb"] as const;

export function prefill(t: TaskLike): Prefill {
  const r = t.requirements ?? {};
  const req = [
    ...Object.entries(r.labels ?? {}).map(([k, v]) => `${k}=${v}`),
    ...FACTS.filter((k) => r[k] !== undefined).map((k) => `${k}=${r[k]}`),
  ];
  return {
    name: t.name,
    invoke: invokeOf(t.cli_args) ?? "",
    inputs: (t.inputs ?? []).join(","),
    env: Object.entries(t.env ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join("\n"),
    schedule: t.schedule ?? "",
    timezone: t.timezone ?? "",
    misfire: t.misfire_policy ?? "skip",
    priority: t.priority === undefined || t.priority === 50 ? "" : String(t.priority),
    timeout: t.timeout_s ? String(t.timeout_s) : "",
    retries: t.max_retries ? String(t.max_retries) : "",
    requirements: req.join("\n"),
    metadata: t.metadata && Object.keys(t.metadata).length ? JSON.stringify(t.metadata, null, 1) : "",
    daemon: !!t.daemon,
  };
}

const INVOKE = /^--invoke=(.*)$/;
/** The export a task's cli_args name with `--invoke=` (what `tasks create --function` sends). */
export const invokeOf = (args: string[] | null | undefined): string | undefined =>
  args?.map((a) => INVOKE.exec(a)?.[1]).find((x) => x !== undefined);

/** `KEY=VALUE` lines as an object; the first line that is not one is the error, naming the field. */
function pairs(field: string, text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const i = t.indexOf("=");
    if (i < 1) throw new Error(`${field}: "${t}" is not KEY=VALUE`);
    out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return out;
}

/**
 * The body the form describes. Every field is sent, an emptied one as empty: a copy (`POST /tasks/{id}/clone`)
 * takes the original's value for a field left out, so what the form clears must be said.
 */
export function taskBody(f: FormData, copy = false, args: string[] = []): Record<string, unknown> {
  const text = (k: string) => String(f.get(k) ?? "").trim();
  const body: Record<string, unknown> = { name: text("name") };
  // The function to call, as `tasks create --function` sends it; a copy's other cli_args kept.
  const rest = args.filter((a) => !INVOKE.test(a));
  body.cli_args = text("invoke") ? [...rest, `--invoke=${text("invoke")}`] : rest;
  const inputs = text("inputs");
  body.inputs = inputs ? inputs.split(",").map((x) => x.trim()) : [];
  body.env = pairs("env", text("env"));
  body.schedule = text("schedule");
  body.timezone = text("timezone");
  body.misfire_policy = text("misfire") || "skip";
  body.priority = text("priority") ? Number(text("priority")) : 50;
  if (text("timeout")) body.timeout_s = Number(text("timeout"));
  // A copy whose timeout was cleared has none (a number has no empty value to send).
  else if (copy) body.unset = ["timeout_s"];
  body.max_retries = text("retries") ? Number(text("retries")) : 0;
  const req = pairs("requirements", text("requirements"));
  const requirements: Record<string, unknown> = {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(req)) {
    if (k === "min_memory_mb") requirements[k] = Number(v);
    else if ((FACTS as readonly string[]).includes(k)) requirements[k] = v;
    else labels[k] = v;
  }
  if (Object.keys(labels).length) requirements.labels = labels;
  body.requirements = requirements;
  const meta = text("metadata");
  if (meta) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(meta);
    } catch {
      throw new Error('metadata: not JSON (an object such as {"team": "edge"})');
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("metadata: must be an object");
    body.metadata = parsed;
  } else body.metadata = {};
  body.daemon = !!f.get("daemon");
  return copy ? body : withoutEmpty(body);
}

/** A new task's body without the fields at their defaults (its page then shows them as unset). */
function withoutEmpty(body: Record<string, unknown>): Record<string, unknown> {
  const empty = (v: unknown) =>
    v === "" || v === false || (typeof v === "object" && v !== null && Object.keys(v).length === 0);
  const defaults: Record<string, unknown> = { priority: 50, max_retries: 0, misfire_policy: "skip" };
  return Object.fromEntries(Object.entries(body).filter(([k, v]) => !empty(v) && defaults[k] !== v));
}

export interface Exports {
  /** Exported functions with their signatures, `add(i32, i32) → i32`. */
  functions: { name: string; signature: string }[];
  /** The same, as the proplet chooses among them (core/wasm-call.ts). */
  map?: Map<string, Signature>;
  /** Why the exports could not be read (a component, not a module). */
  note?: string;
}

/** A module's exported functions, read from its bytes in the browser. */
export function exportsOf(bytes: Uint8Array): Exports {
  const layer = bytes[6] === 1 && bytes[4] === 0x0d;
  if (layer) return { functions: [], note: "a component: the proplet reads its WIT exports when it runs" };
  try {
    const info = inspect(bytes);
    const functions = [...info.functions].map(([name, s]) => ({
      name,
      signature: `${name}(${s.params.join(", ")})${s.results.length ? ` → ${s.results.join(", ")}` : ""}`,
    }));
    return { functions, map: info.functions };
  } catch (e) {
    return { functions: [], note: `not a module this form can read: ${e instanceof Error ? e.message : e}` };
  }
}

/**
 * What a run will call, as the proplet chooses (core/wasm-call.ts `chooseEntry`): the function named, else the
 * task's name if it is an export, else a WASI command's `_start`, else `main` or `run`; or why nothing.
 */
export function entryOf(x: Exports, name: string, invoke: string): { ok: boolean; text: string } {
  if (!x.map) return { ok: true, text: x.note ?? "" };
  if (!invoke && !name) return { ok: true, text: "Name the task, or choose the function it calls." };
  const e = chooseEntry(x.map, name, invoke || undefined);
  if (typeof e === "string") return { ok: false, text: `It cannot run: ${e}.` };
  if (e.kind === "command") return { ok: true, text: "It runs as a WASI command (_start): its output is the result." };
  const by = invoke ? "the function chosen" : e.export === name ? "its name" : `${name} is not an export`;
  return { ok: e.export === (invoke || name), text: `It will call ${e.export} (${by}).` };
}

/** A base64 module's bytes (an example's). */
export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
