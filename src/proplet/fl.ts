import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { MAX_ENV_DOC_BYTES, modelVersionOf } from "../core/fl-experiment.ts";

// A federated-learning round's task on the proplet (docs/ARCHITECTURE.md, "Federated learning"). A task is one
// because of its env (`ROUND_ID`, `MODEL_URI`), as upstream. Before the run: the model and this proplet's
// dataset are fetched and given to the module as files in a read-only `/fl` directory (`MODEL_PATH`,
// `DATASET_PATH`; a large model does not fit an env var) and, when small, as `MODEL_DATA` / `DATASET_DATA`.
// After it: the module's stdout is the update, posted to the coordinator (or sent on upstream's MQTT fallback),
// and the result is upstream's FL envelope. A missing URL fails the task with a reason, never silently.

const FETCH_TIMEOUT_MS = 30_000;
export const FL_GUEST_DIR = "/fl";

export interface FlContext {
  propletId: string;
  /** Sent as a Bearer token: the manager's FL routes take a proplet's own API key. */
  apiKey: string;
  /** The proplet's process env (where upstream reads the URLs when the task does not carry them). */
  processEnv: Record<string, string | undefined>;
  /**
   * The gateway's FL URL as the proplet's operator configured it (PROPLET_FL_URL, serve's own URL for its local
   * proplet, a `ws(s)://` broker's origin): the one place besides its own env's URLs that may get the key.
   */
  gatewayUrl?: string;
  /**
   * The site CA the proplet trusts for its broker (PROPLET_MQTT_TLS_CA_CERT, or the one a join kept): trusted for
   * its FL requests too, besides the system's, as a gateway's HTTPS certificate comes from it.
   */
  ca?: string;
}

export interface FlRun {
  env: Record<string, string>;
  dir: { host: string; guest: string; readonly: true };
  round?: string;
  coordinator?: string;
  /** Whether the coordinator may be sent this proplet's API key (see `mayHaveKey`). */
  coordinatorKey?: boolean;
  cleanup(): void;
}

/**
 * Task env first, then the proplet's own env, then the manager's hint (`PROPELLER_FL_URL`, a round task's). For
 * the hint, the proplet's own name of its gateway's FL URL (as its operator set it, or the URL it joined) stands
 * in: the hint is serve's URL as seen on serve's host, which a remote proplet may know by another name (or not
 * reach at all), and its key goes only to the name it knows.
 */
function url(name: string[], env: Record<string, string>, ctx: FlContext): string | undefined {
  for (const n of name) if (env[n]) return env[n];
  for (const n of name) if (ctx.processEnv[n]) return ctx.processEnv[n];
  return env.PROPELLER_FL_URL ? ctx.gatewayUrl || env.PROPELLER_FL_URL : undefined;
}

/** A refusal of a request sent without the key: said so, and how to send it. */
const keyHint = (status: number, base: string, ctx: FlContext) =>
  status === 401 && !mayHaveKey(base, ctx)
    ? ` (this proplet's key goes only to its gateway's FL URL${ctx.gatewayUrl ? `, ${ctx.gatewayUrl},` : ""} and its own FL URLs: set PROPLET_FL_URL to this one's)`
    : "";

const COORDINATOR = ["MANAGER_COORDINATOR_URL", "COORDINATOR_URL"];
const FL_URL_VARS = [...COORDINATOR, "MODEL_REGISTRY_URL", "DATA_STORE_URL"];

const originOf = (u: string | undefined): string | undefined => {
  try {
    return u ? new URL(u).origin : undefined;
  } catch {
    return undefined;
  }
};

/**
 * The proplet's API key goes only to the exact origins (scheme, host and port) its own operator configured: the
 * URLs of its own env and its gateway's FL URL. A task's env is written by whoever created the task, and must not
 * be able to send a proplet's secret elsewhere, another port of the gateway's host included. Elsewhere the
 * request goes without it.
 */
function mayHaveKey(base: string, ctx: FlContext): boolean {
  const origin = originOf(base);
  if (!origin || origin === "null") return false;
  const trusted = [ctx.gatewayUrl, ...FL_URL_VARS.map((n) => ctx.processEnv[n])].map(originOf);
  return trusted.includes(origin);
}

export const isFlTask = (env: Record<string, string>) => Boolean(env.ROUND_ID || env.MODEL_URI);

const keyHeader = (ctx: FlContext, withKey: boolean): Record<string, string> =>
  withKey ? { authorization: `Bearer ${ctx.apiKey}` } : {};

/** The site CA beside the system's (a `ca` given alone would replace them: a public coordinator would fail). */
const tlsOf = (ctx: FlContext) => (ctx.ca ? { tls: { ca: [...rootCertificates, ctx.ca] } } : {});

async function getJson(base: string, path: string, ctx: FlContext): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}${path}`, {
    headers: keyHeader(ctx, mayHaveKey(base, ctx)),
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    ...tlsOf(ctx),
  });
  return { status: res.status, text: await res.text() };
}

/** Fetches what the round's module reads; a reason instead when it cannot run. */
export async function prepareFl(env: Record<string, string>, ctx: FlContext): Promise<FlRun | string> {
  const out: Record<string, string> = { PROPLET_ID: env.PROPLET_ID || ctx.propletId };
  const coordinator = env.ROUND_ID ? url(COORDINATOR, env, ctx) : undefined;
  if (env.ROUND_ID && !coordinator) {
    return "ROUND_ID is set but MANAGER_COORDINATOR_URL is not (in the task's env or the proplet's): the update would have nowhere to go";
  }
  // Its real path: a preopen is opened by the path it is given and refused if that goes through a link.
  const host = realpathSync(mkdtempSync(join(tmpdir(), "propeller-fl-")));
  const cleanup = () => rmSync(host, { recursive: true, force: true });
  try {
    if (env.MODEL_URI) {
      const registry = url(["MODEL_REGISTRY_URL"], env, ctx);
      if (!registry)
        return fail(cleanup, "MODEL_URI is set but MODEL_REGISTRY_URL is not (in the task's env or the proplet's)");
      const version = modelVersionOf(env.MODEL_URI);
      const r = await getJson(registry, `/models/${version}`, ctx);
      if (r.status !== 200)
        return fail(
          cleanup,
          `model v${version} from ${registry}: HTTP ${r.status} ${r.text.slice(0, 200)}${keyHint(r.status, registry, ctx)}`,
        );
      place(out, host, "MODEL", "model.json", r.text);
    }
    const store = url(["DATA_STORE_URL"], env, ctx);
    if (store) {
      const r = await getJson(store, `/datasets/${encodeURIComponent(out.PROPLET_ID!)}`, ctx);
      // Upstream's client falls back to synthetic data without one: not an error.
      if (r.status === 200) place(out, host, "DATASET", "dataset.json", r.text);
      else if (r.status !== 404)
        return fail(
          cleanup,
          `dataset from ${store}: HTTP ${r.status} ${r.text.slice(0, 200)}${keyHint(r.status, store, ctx)}`,
        );
    }
    if (!env.ML_BACKEND) out.ML_BACKEND = backendFor(env.HYPERPARAMS);
    return {
      env: out,
      dir: { host, guest: FL_GUEST_DIR, readonly: true },
      ...(env.ROUND_ID ? { round: env.ROUND_ID } : {}),
      ...(coordinator ? { coordinator, coordinatorKey: mayHaveKey(coordinator, ctx) } : {}),
      cleanup,
    };
  } catch (e) {
    return fail(cleanup, `fetching the round's inputs: ${e instanceof Error ? e.message : e}`);
  }
}

function fail(cleanup: () => void, why: string): string {
  cleanup();
  return why;
}

/** The document as a file in the round's directory, and in an env var when it is small. */
function place(env: Record<string, string>, host: string, prefix: string, file: string, text: string): void {
  // Compact, as upstream passes it on.
  let compact = text;
  try {
    compact = JSON.stringify(JSON.parse(text));
  } catch {}
  writeFileSync(join(host, file), compact);
  env[`${prefix}_PATH`] = `${FL_GUEST_DIR}/${file}`;
  if (Buffer.byteLength(compact) <= MAX_ENV_DOC_BYTES) env[`${prefix}_DATA`] = compact;
}

/** Upstream's rule: `tinyml` for `batch_size` ≤ 8, else `standard`. */
export function backendFor(hyperparams: string | undefined): "tinyml" | "standard" {
  try {
    const b = (JSON.parse(hyperparams ?? "{}") as { batch_size?: unknown }).batch_size;
    return typeof b === "number" && b <= 8 ? "tinyml" : "standard";
  } catch {
    return "standard";
  }
}

export type Delivery = { ok: true; via: "http" | "mqtt" } | { ok: false; error: string };

/**
 * Sends the module's stdout as the round's update: POST to the coordinator; on a network error or a 5xx, on the
 * MQTT fallback. A refusal (4xx: late, malformed, not a participant) is the task's error.
 */
export async function deliverUpdate(
  stdout: string,
  run: FlRun,
  ctx: FlContext,
  mqtt: (topic: string, body: string) => Promise<void>,
): Promise<{ delivery: Delivery; envelope: Record<string, unknown> }> {
  let update: Record<string, unknown>;
  try {
    update = JSON.parse(stdout);
    if (typeof update !== "object" || update === null || Array.isArray(update)) throw new Error("not an object");
  } catch (e) {
    return {
      delivery: {
        ok: false,
        error: `the module's output is not a JSON update (${e instanceof Error ? e.message : e})`,
      },
      envelope: {},
    };
  }
  update.round_id ??= run.round;
  update.proplet_id ??= ctx.propletId;
  const body = JSON.stringify(update);
  const envelope = {
    round_id: run.round,
    proplet_id: ctx.propletId,
    num_samples:
      typeof update.num_samples === "number" ? update.num_samples : Number(ctx.processEnv.FL_NUM_SAMPLES ?? 1),
    update_b64: Buffer.from(stdout).toString("base64"),
    format: ctx.processEnv.FL_FORMAT ?? "f32-delta",
    metrics: update.metrics ?? {},
  };
  let why: string;
  try {
    const res = await fetch(`${run.coordinator}/update`, {
      method: "POST",
      headers: { "content-type": "application/json", ...keyHeader(ctx, run.coordinatorKey === true) },
      body,
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      ...tlsOf(ctx),
    });
    const text = await res.text();
    if (res.ok) return { delivery: { ok: true, via: "http" }, envelope };
    if (res.status < 500) {
      let reason = text;
      try {
        reason = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {}
      return { delivery: { ok: false, error: `the coordinator refused the update: ${reason}` }, envelope };
    }
    why = `HTTP ${res.status}`;
  } catch (e) {
    why = e instanceof Error ? e.message : String(e);
  }
  try {
    await mqtt(`fl/rounds/${run.round}/updates/${ctx.propletId}`, body);
    return { delivery: { ok: true, via: "mqtt" }, envelope };
  } catch (e) {
    return {
      delivery: {
        ok: false,
        error: `update not delivered: ${why}; MQTT fallback: ${e instanceof Error ? e.message : e}`,
      },
      envelope,
    };
  }
}
