import { log } from "../log.ts";

// `npx bun src/main.ts proplet` and `npm start` run us as npm → sh → bun. A SIGTERM to npm (what a process
// manager or `kill` sends to the pid it started) ends npm and the shell but never reaches bun, which would go
// on as an orphan. Started by npm (it sets `npm_command` in its children's environment), we watch our parent
// and, once it is gone (we are re-parented), stop as on SIGTERM: the proplet goes offline, and its host-runtime
// children follow (they run with `--exit-with-parent`) as do its worker threads. Started any other way (systemd,
// a shell, nohup) nothing is watched: a parent that goes away there is not asking us to stop.

const EVERY_MS = 500;

export function endWithLauncher(env: NodeJS.ProcessEnv = process.env): void {
  if (!env.npm_command && !env.npm_lifecycle_event) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    log.warn(`the launcher (npm, pid ${parent}) ended: stopping as on SIGTERM`);
    process.kill(process.pid, "SIGTERM");
  }, EVERY_MS);
  timer.unref();
}
