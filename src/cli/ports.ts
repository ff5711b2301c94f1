import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createServer } from "node:net";
import { UsageError } from "./args.ts";

// One port, one site: before serve writes anything (data dir, admin token, database), each port it will listen
// on is bound once and let go. A port in use is refused with its holder named: another propeller when the port
// answers /health as one, else the process holding it when /proc shows it.

export interface WantedPort {
  port: number;
  /** How the operator sets it: `--http-port`. */
  flag: string;
}

/** Whether `host:port` can be listened on now (exclusively: a holder's SO_REUSEPORT does not let us share). */
function free(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

/** A propeller answering /health on the port: its version, or undefined when it is something else. */
async function propellerOn(host: string, port: number): Promise<string | undefined> {
  const at = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  for (const scheme of ["http", "https"]) {
    try {
      const r = await fetch(`${scheme}://${at}:${port}/health`, {
        signal: AbortSignal.timeout(1000),
        tls: { rejectUnauthorized: false },
      });
      const h = (await r.json()) as Record<string, unknown>;
      const service = String(h.service ?? h.description ?? "");
      // The manager's /health, or a stand-by's (standby.ts: a role instead of a description).
      if (typeof h.version === "string" && (/propeller|manager/.test(service) || h.role === "standby"))
        return h.version;
    } catch {
      // not HTTP(S), not JSON, or not answering: try the next scheme
    }
  }
  return undefined;
}

/** The process listening on a TCP port, from /proc (Linux; another user's sockets are not visible). */
function holderOf(port: number): { pid: number; cmd: string } | undefined {
  try {
    const inodes = new Set<string>();
    for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      let text = "";
      try {
        text = readFileSync(table, "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        // local_address is HEXIP:HEXPORT; state 0A is LISTEN; the socket's inode is the 10th field.
        if (f.length > 9 && f[3] === "0A" && Number.parseInt(f[1]!.split(":")[1]!, 16) === port) inodes.add(f[9]!);
      }
    }
    if (!inodes.size) return undefined;
    for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        let link = "";
        try {
          link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          continue;
        }
        const m = /^socket:\[(\d+)\]$/.exec(link);
        if (m && inodes.has(m[1]!)) {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
          return { pid: Number(pid), cmd };
        }
      }
    }
  } catch {
    // no /proc: the port is named without its holder
  }
  return undefined;
}

/** Refuses the start when a port is taken, naming each one and who holds it; writes nothing. */
export async function checkPortsFree(host: string, ports: WantedPort[]): Promise<void> {
  const problems: string[] = [];
  const seen = new Map<number, string>();
  for (const { port, flag } of ports) {
    if (port === 0) continue;
    const twice = seen.get(port);
    if (twice) {
      problems.push(`${flag} ${port} is also ${twice}: give each its own port`);
      continue;
    }
    seen.set(port, flag);
    const e = await free(host, port);
    if (!e) continue;
    if (e.code !== "EADDRINUSE") {
      problems.push(`${flag} ${port}: cannot listen on ${host}:${port} (${e.code ?? e.message})`);
      continue;
    }
    const version = await propellerOn(host, port);
    const holder = holderOf(port);
    const pid = holder ? ` (PID ${holder.pid}: ${holder.cmd})` : "";
    problems.push(
      version
        ? `port ${port} (${flag}) is used by another propeller serve, version ${version}${pid}: stop it, or give this one another port and data dir`
        : `port ${port} (${flag}) is in use on ${host}${holder ? ` by PID ${holder.pid}: ${holder.cmd}` : ""}`,
    );
  }
  if (problems.length) throw new UsageError(`${problems.join("; ")}; nothing was written`);
}
