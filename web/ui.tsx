import { type ComponentChildren, createContext } from "preact";
import { useContext, useEffect, useId, useState } from "preact/hooks";
import { api } from "./api.ts";
import { type LiveEvent, onLive, onStatus } from "./live.ts";

// Pieces every page uses: data that reloads when a live event concerns it, buttons that say why they are
// disabled and show their error beside them. Charts are in chart.tsx, tables in table.tsx.

export interface Session {
  /** The id of the token signed in with (none without authentication). */
  id?: string;
  name: string;
  role: "admin" | "viewer";
  auth: boolean;
}
export const SessionContext = createContext<Session>({ name: "", role: "viewer", auth: true });
export const useSession = () => useContext(SessionContext);
export const VIEWER_REASON = "a viewer token may look, not change: sign in with an admin token";
/** Whether this session may change things: a viewer's console shows no write controls at all. */
export const useCanWrite = () => useSession().role === "admin";

/** Forms start open on a wide screen, folded on a phone (where an open one would fill the first screen). */
export const formsOpen = (): boolean => matchMedia("(min-width: 700px)").matches;

/** Re-renders every `ms`, so relative times ("5 s ago") stay true as time passes. */
export function useClock(ms = 5000): void {
  const [, set] = useState(0);
  useEffect(() => {
    const t = setInterval(() => set(Date.now()), ms);
    return () => clearInterval(t);
  }, []);
}

/** GET `path`, again whenever a live event passes `when` (at most every 300 ms). */
export function useApi<T>(path: string | undefined, when?: (e: LiveEvent) => boolean) {
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    api<T>("GET", path).then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(undefined);
      },
      (e: Error) => live && setError(e.message),
    );
    return () => {
      live = false;
    };
  }, [path, tick]);
  useEffect(() => {
    if (!when) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const off = onLive((e) => {
      if (!when(e) || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        setTick((t) => t + 1);
      }, 300);
    });
    return () => {
      off();
      clearTimeout(timer);
    };
  }, [path]);
  // The live stream lost or back: ask again, so an outage marks what is shown as stale (the last data kept, see
  // Loading) and its end refreshes it. Only on a change: the browser retries a lost stream every few seconds.
  useEffect(() => {
    let last = true;
    return onStatus((up) => {
      if (up === last) return;
      last = up;
      setTick((t) => t + 1);
    });
  }, []);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

/**
 * A button for a change: absent for viewers (their console is read-only), disabled with its reason shown when the
 * item's state says it cannot succeed (`blocked`), busy while it runs, its error shown beside it.
 */
/**
 * Told when any Act's change succeeded: the others let go of their errors, which spoke of a state that has changed
 * (a failed Start's error stayed on screen after Stop, or another button, had succeeded).
 */
const actsDone = new EventTarget();

export function Act(p: {
  label: string;
  run: () => Promise<unknown>;
  primary?: boolean;
  confirm?: string;
  /** Why it cannot succeed now (a finished task cannot be stopped); the button is disabled and says so. */
  blocked?: string;
}) {
  const canWrite = useCanWrite();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const why = useId();
  useEffect(() => {
    const clear = (e: Event) => (e as CustomEvent<string>).detail !== why && setError(undefined);
    actsDone.addEventListener("done", clear);
    return () => actsDone.removeEventListener("done", clear);
  }, [why]);
  if (!canWrite) return null;
  return (
    <span>
      <button
        type="button"
        class={p.primary ? "primary" : ""}
        disabled={busy || !!p.blocked}
        title={p.blocked}
        aria-label={p.label}
        aria-describedby={p.blocked ? why : undefined}
        onClick={async () => {
          if (p.confirm && !window.confirm(p.confirm)) return;
          setBusy(true);
          setError(undefined);
          try {
            await p.run();
            actsDone.dispatchEvent(new CustomEvent("done", { detail: why }));
          } catch (e) {
            setError(e instanceof Error ? e.message : String(e));
          } finally {
            setBusy(false);
          }
        }}
      >
        {p.label}
      </button>
      {/* Said beside it, not only in a tooltip a touch screen never shows. */}
      {p.blocked && (
        <span class="muted why" id={why}>
          {" "}
          {p.blocked}
        </span>
      )}
      {error && (
        <span class="error" role="alert">
          {" "}
          {error}
        </span>
      )}
    </span>
  );
}

/** An error in plain words, announced to screen readers; nothing when there is none. */
export function Alert(p: { text?: string }) {
  return p.text ? (
    <p class="error" role="alert">
      {p.text}
    </p>
  ) : null;
}

/** The one line a viewer's console says about its missing controls (under the header, on every page). */
export function ViewerNote() {
  return useSession().role === "admin" ? null : (
    <p class="viewer-note" role="note" data-testid="read-only">
      Read-only: {VIEWER_REASON}.
    </p>
  );
}

/**
 * Data once it came; before, "Loading…" or the error. A later failure (an outage) keeps the last data shown, marked
 * stale with the reason, rather than replacing it with the error.
 */
export function Loading(p: { error?: string; children?: ComponentChildren; ready: boolean }) {
  if (!p.ready) return p.error ? <Alert text={p.error} /> : <p class="muted">Loading…</p>;
  if (!p.error) return <>{p.children}</>;
  return (
    <div class="stale" data-stale="true">
      <p class="stale-note" role="status">
        Last known data, not current: {p.error}
      </p>
      {p.children}
    </div>
  );
}

export function StateText(p: { state: number; status: string }) {
  return <span class={`s${p.state}`}>{p.status}</span>;
}

/**
 * A revoke button, or "revoked" once it is. Revoking the token this console is signed in with (`inUse`) ends the
 * session at once: it asks for the token's name typed out, not a click on a browser's confirm.
 */
export function Revoke(p: {
  what: string;
  name: string;
  revoked?: string;
  inUse?: boolean;
  run: () => Promise<unknown>;
}) {
  const [asking, setAsking] = useState(false);
  const [typed, setTyped] = useState("");
  if (p.revoked) return <span class="muted">revoked</span>;
  if (!p.inUse) return <Act label={`Revoke ${p.what} ${p.name}`} confirm={`Revoke ${p.name}?`} run={p.run} />;
  if (!asking)
    return (
      <button type="button" onClick={() => setAsking(true)}>
        Revoke {p.what} {p.name} (in use)…
      </button>
    );
  return (
    <span class="type-confirm">
      <label>
        This console is signed in with it: type <strong>{p.name}</strong> to revoke it and sign out
        <input value={typed} autocomplete="off" onInput={(e) => setTyped(e.currentTarget.value)} />
      </label>
      <Act
        label={`Revoke ${p.what} ${p.name}`}
        blocked={typed === p.name ? undefined : `type ${p.name} first`}
        run={p.run}
      />
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}
