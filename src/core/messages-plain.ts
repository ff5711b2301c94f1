import { MAX_SIGNATURE_CHARS, MODULE_DIGEST, type ResultMsg, RUN_ID_CHARS, type StartMsg } from "./messages.ts";

// Quick checks of the start and result messages as our manager and proplets send them, giving what StartMsg and
// ResultMsg give for them, without zod; undefined for anything else (a null, an unknown or rarer key, a value out of
// bounds), which the schema then decides. In scripts/bench/dispatch.ts zod's parse of each start cost serve's local
// proplet about 5% of serve's main thread, and each result's about 1.5% more (a preprocess pipe per nullable field).
// test/unit/core/messages-plain.test.ts holds each to its schema's answers on many random and hostile payloads.

/** Keys a start message's quick check takes: the rarer ones (sent again, monitoring, parents' results) are zod's. */
const START_KEYS = new Set([
  "id",
  "name",
  "state",
  "image_url",
  "file",
  "inputs",
  "cli_args",
  "env",
  "daemon",
  "latent",
  "encrypted",
  "broadcast",
  "proplet_id",
  "kbs_resource_path",
  "hal_storage_path",
  "timeout_s",
  "max_memory_mb",
  "traceparent",
  "run_id",
  "attempt",
  "module_digest",
  "module_signature",
]);

/** An optional string without null (nullToUndef(z.string()) takes null too: zod's to decide). */
const str = (v: unknown) => v === undefined || typeof v === "string";
/** RunId in messages.ts (64 characters at most, its charset). */
const runId = (v: unknown) => typeof v === "string" && v.length <= 64 && RUN_ID_CHARS.test(v);
/** z.number().int(): a safe integer. */
const int = (v: unknown): v is number => Number.isSafeInteger(v);
const flag = (v: unknown) => v === undefined || typeof v === "boolean";

/** A start message (`control/manager/start`) as StartMsg gives it, or undefined for StartMsg to decide. */
export function plainStart(json: unknown): StartMsg | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  const o = json as Record<string, unknown>;
  for (const k in o) if (!START_KEYS.has(k)) return undefined;
  const { id, name, state, inputs, cli_args, env, daemon, latent, encrypted, broadcast } = o;
  const { timeout_s, max_memory_mb, traceparent, run_id, attempt, module_digest, module_signature } = o;
  if (typeof id !== "string" || id.length === 0 || typeof name !== "string" || name.length === 0) return undefined;
  if (state !== undefined && !int(state)) return undefined;
  if (!str(o.image_url) || !str(o.file) || !str(o.proplet_id)) return undefined;
  if (!str(o.kbs_resource_path) || !str(o.hal_storage_path)) return undefined;
  if (!flag(daemon) || !flag(latent) || !flag(encrypted) || !flag(broadcast)) return undefined;
  if (timeout_s !== undefined && !(typeof timeout_s === "number" && Number.isFinite(timeout_s) && timeout_s > 0))
    return undefined;
  if (max_memory_mb !== undefined && !(int(max_memory_mb) && max_memory_mb > 0)) return undefined;
  if (attempt !== undefined && !(int(attempt) && attempt > 0)) return undefined;
  if (traceparent !== undefined && !(typeof traceparent === "string" && traceparent.length <= 64)) return undefined;
  if (run_id !== undefined && !runId(run_id)) return undefined;
  if (module_digest !== undefined && !(typeof module_digest === "string" && MODULE_DIGEST.test(module_digest)))
    return undefined;
  if (
    module_signature !== undefined &&
    !(typeof module_signature === "string" && module_signature.length <= MAX_SIGNATURE_CHARS)
  )
    return undefined;
  const ins = inputs === undefined ? undefined : plainInputs(inputs);
  if (ins === null) return undefined;
  if (cli_args !== undefined && !stringList(cli_args)) return undefined;
  if (env !== undefined && !stringRecord(env)) return undefined;
  // Built in the schema's order of keys, with the same keys present, as zod's object is.
  const m = { id, name } as StartMsg;
  if (state !== undefined) m.state = state as number;
  if (o.image_url !== undefined) m.image_url = o.image_url as string;
  if (o.file !== undefined) m.file = o.file as string;
  if (ins !== undefined) m.inputs = ins;
  // Copies, as zod's are: the manager's own objects are never the payload's (broker/parsed.ts keeps that).
  if (cli_args !== undefined) m.cli_args = (cli_args as string[]).slice();
  if (env !== undefined) m.env = { ...(env as Record<string, string>) };
  m.daemon = (daemon as boolean | undefined) ?? false;
  m.latent = (latent as boolean | undefined) ?? false;
  m.encrypted = (encrypted as boolean | undefined) ?? false;
  m.broadcast = (broadcast as boolean | undefined) ?? false;
  if (o.proplet_id !== undefined) m.proplet_id = o.proplet_id as string;
  if (o.kbs_resource_path !== undefined) m.kbs_resource_path = o.kbs_resource_path as string;
  if (o.hal_storage_path !== undefined) m.hal_storage_path = o.hal_storage_path as string;
  if (timeout_s !== undefined) m.timeout_s = timeout_s;
  if (max_memory_mb !== undefined) m.max_memory_mb = max_memory_mb;
  if (traceparent !== undefined) m.traceparent = traceparent;
  if (run_id !== undefined) m.run_id = run_id as string;
  if (attempt !== undefined) m.attempt = attempt;
  if (module_digest !== undefined) m.module_digest = module_digest;
  if (module_signature !== undefined) m.module_signature = module_signature;
  return m;
}

/** Inputs as Inputs gives them (numbers as their text), or null when one is neither a string nor a number. */
function plainInputs(v: unknown): string[] | null {
  if (!Array.isArray(v)) return null;
  const out: string[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x === "string") out[i] = x;
    else if (typeof x === "number" && Number.isFinite(x)) out[i] = String(x);
    else return null;
  }
  return out;
}

function stringList(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  for (const s of v) if (typeof s !== "string") return false;
  return true;
}

/** A plain record of strings; an own `__proto__` key (which a copy would not keep as a key) is zod's to decide. */
function stringRecord(v: unknown): boolean {
  if (typeof v !== "object" || v === null || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype)
    return false;
  for (const k in v) if (k === "__proto__" || typeof (v as Record<string, unknown>)[k] !== "string") return false;
  return true;
}

const RESULT_KEYS = new Set(["task_id", "proplet_id", "run_id", "results", "error"]);

/** A result (`control/proplet/results`) as ResultMsg gives it, or undefined for ResultMsg to decide. */
export function plainResult(json: unknown): ResultMsg | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  const o = json as Record<string, unknown>;
  for (const k in o) if (!RESULT_KEYS.has(k)) return undefined;
  const { task_id, proplet_id, run_id, results, error } = o;
  if (typeof task_id !== "string" || task_id.length === 0 || results === undefined) return undefined;
  if (!str(proplet_id) || (run_id !== undefined && !runId(run_id))) return undefined;
  if (!(error === undefined || error === null || typeof error === "string")) return undefined;
  const m = { task_id } as ResultMsg;
  if (proplet_id !== undefined) m.proplet_id = proplet_id as string;
  if (run_id !== undefined) m.run_id = run_id as string;
  // The same value zod's z.unknown() passes on (the payload's own JSON: nobody else holds it but the broker, which
  // only reads it).
  m.results = results;
  if (error !== undefined) m.error = error;
  return m;
}
