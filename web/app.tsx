import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api } from "./api.ts";
import { connect, disconnect, onStatus } from "./live.ts";
import { AccessPage } from "./pages/access.tsx";
import { ExperimentPage, FlPage } from "./pages/fl.tsx";
import { JobPage, JobsPage, WorkflowPage, WorkflowsPage } from "./pages/groups.tsx";
import { OverviewPage } from "./pages/overview.tsx";
import { PropletPage, PropletsPage } from "./pages/proplets.tsx";
import { TaskPage } from "./pages/task.tsx";
import { TasksPage } from "./pages/tasks.tsx";
import { Alert, type Session, SessionContext, useClock, ViewerNote } from "./ui.tsx";

// The console's shell: signing in (the link serve prints, `/#login=<one-time code>`, or a pasted token; either
// opens a session whose id the manager sets as an HttpOnly cookie), the pages by hash route, and the live banner.

/**
 * The sign-in link's code, taken out of the address bar (and the history entry) before anything renders. It is in
 * the fragment, so it was never sent to the server nor in a Referer; and it works once. A token in the query
 * string (`/?token=`, an old link) is removed and never used: an address is kept in history and logs.
 */
function takeFromAddress(): { code?: string; oldLink: boolean } {
  const code = /^#login=([\w-]+)$/.exec(location.hash)?.[1];
  const oldLink = new URLSearchParams(location.search).has("token");
  if (code || oldLink) history.replaceState(null, "", `${location.pathname}${code ? "#/" : location.hash}`);
  return { ...(code ? { code } : {}), oldLink };
}
const fromAddress = takeFromAddress();

const PAGES: [string, string][] = [
  ["#/", "Overview"],
  ["#/proplets", "Proplets"],
  ["#/tasks", "Tasks"],
  ["#/workflows", "Workflows"],
  ["#/jobs", "Jobs"],
  ["#/fl", "Federated learning"],
  ["#/access", "Access"],
];

function useHash(): string {
  const [hash, setHash] = useState(location.hash || "#/");
  useEffect(() => {
    const on = () => setHash(location.hash || "#/");
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash;
}

function Page(p: { hash: string }) {
  // Every page's relative times ("just now", "5 s ago") move on as time passes, not only when data changes.
  useClock();
  // `#/tasks?state=Failed`: the part after `?` is the page's own (a filter), not part of the route.
  const [path, id] = p.hash.slice(1).split("?")[0]!.split("/").filter(Boolean).map(decodeURIComponent) as [
    string?,
    string?,
  ];
  // `.` and `..` are steps, not ids: `#/tasks/..` asked for GET / and `/runs` (the API refuses such ids anyway).
  if (id === "." || id === "..") return <p class="error">No page {p.hash}.</p>;
  switch (path) {
    case undefined:
      return <OverviewPage />;
    case "proplets":
      return id ? <PropletPage id={id} /> : <PropletsPage />;
    case "tasks":
      return id ? <TaskPage id={id} /> : <TasksPage key={p.hash} />;
    case "workflows":
      return id ? <WorkflowPage id={id} /> : <WorkflowsPage />;
    case "jobs":
      return id ? <JobPage id={id} /> : <JobsPage />;
    case "fl":
      return id ? <ExperimentPage id={id} /> : <FlPage />;
    case "access":
      return <AccessPage />;
    default:
      return <p class="error">No page {p.hash}.</p>;
  }
}

/** Focus on the page's heading (focusable by script only), so a screen reader starts reading the new page. */
function focusHeading(): void {
  const h1 = document.querySelector<HTMLElement>("main h1");
  if (!h1) return;
  h1.tabIndex = -1;
  h1.focus();
}

function SignIn(p: { onDone: (s: Session) => void; error?: string }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(p.error);
  return (
    <main>
      <h1>Sign in to Propeller</h1>
      <p class="muted">
        Open the link <code>propeller serve</code> prints at start (it works once, within 10 minutes), or paste a token
        (the admin token is in the data dir's <code>admin.token</code>; <code>propeller tokens create</code> makes
        more).
      </p>
      <form
        class="grid"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            p.onDone(await api<Session>("POST", "/session", { token: token.trim() }));
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          }
        }}
      >
        <label>
          Token
          <input type="password" autocomplete="off" value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        </label>
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
      <Alert text={error} />
    </main>
  );
}

function App() {
  const hash = useHash();
  const [session, setSession] = useState<Session | null | undefined>();
  const [signInError, setSignInError] = useState<string>();
  const [up, setUp] = useState(true);

  useEffect(() => {
    (async () => {
      if (fromAddress.code) {
        try {
          setSession(await api<Session>("POST", "/session", { code: fromAddress.code }));
          return;
        } catch (e) {
          setSignInError(`the sign-in link was refused: ${e instanceof Error ? e.message : e}`);
        }
      } else if (fromAddress.oldLink) {
        setSignInError("a link with ?token= is not accepted (it stays in the history): sign in here");
      }
      try {
        setSession(await api<Session>("GET", "/session"));
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) setSignInError(e instanceof Error ? e.message : String(e));
        setSession(null);
      }
    })();
  }, []);

  useEffect(() => {
    if (!session) return;
    connect();
    return onStatus(async (live) => {
      setUp(live);
      if (live || !session.auth) return;
      // A stream that stops may mean the session ended (signed out elsewhere, its token revoked, serve restarted:
      // sessions live in serve's memory): then back to signing in, saying why.
      try {
        await api("GET", "/session");
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          disconnect();
          setSignInError("your session has ended (signed out, expired, its token revoked, or serve restarted)");
          setSession(null);
        }
      }
    });
  }, [session]);

  // Each page's title is its heading's text, followed as it changes while a page loads ("Task <id>" becomes its
  // name, "Workflow <id>" its given name): the page renders that, not the shell.
  useEffect(() => {
    const follow = () => {
      const h1 = document.querySelector("main h1")?.textContent?.trim();
      const title = h1 ? `${h1} · Propeller` : "Propeller";
      if (document.title !== title) document.title = title;
    };
    follow();
    const watch = new MutationObserver(follow);
    watch.observe(document.getElementById("app")!, { childList: true, subtree: true, characterData: true });
    return () => watch.disconnect();
  }, []);
  // A link followed within the console moves focus to the new page's heading, as a page load would to the top; not
  // on the first load (the address typed is where focus is wanted).
  const first = useRef(true);
  useEffect(() => {
    if (!session) return;
    if (first.current) {
      first.current = false;
      return;
    }
    focusHeading();
  }, [hash, !!session]);

  if (session === undefined) return <p class="muted">Loading…</p>;
  if (session === null) return <SignIn onDone={setSession} error={signInError} />;
  const current = `#/${hash.slice(2).split(/[/?]/)[0] ?? ""}`;
  return (
    <SessionContext.Provider value={session}>
      {/* A button, not a link to #main: the hash routes pages. */}
      <button type="button" class="skip" onClick={focusHeading}>
        Skip to content
      </button>
      <header>
        <strong>Propeller</strong>
        <nav aria-label="Pages">
          {PAGES.map(([href, label]) => (
            <a key={href} href={href} aria-current={current === href ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who">
          {session.auth ? `${session.name} (${session.role})` : "no authentication"}
          {session.auth && (
            <button
              type="button"
              onClick={async () => {
                disconnect();
                await api("DELETE", "/session");
                setSession(null);
              }}
            >
              Sign out
            </button>
          )}
        </span>
      </header>
      <ViewerNote />
      {!up && (
        <div class="banner" role="status">
          Live updates lost: reconnecting to the manager… What the page shows is the last known data.
        </div>
      )}
      <main class={up ? undefined : "stale"} data-stale={up ? undefined : "true"}>
        <Page hash={hash} />
      </main>
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById("app")!);
