import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort, MAIN } from "../../test/helpers.ts";
import { Link } from "../../test/link.ts";
import { type Postgres, startPostgres } from "../../test/postgres.ts";
import { atExit, kill9, running, type Started, start, terminate } from "./procs.ts";

// The site under test, built in one directory: "ha" is mosquitto + PostgreSQL + two managers; "single" is one
// serve on SQLite with its embedded broker. Both have standalone proplets, each behind its own Link (test/link.ts,
// the stalling proxy) to the broker, and one ledger directory every proplet may preopen.

export type Profile = "ha" | "single";

export interface Manager {
  name: string;
  url: string;
  httpPort: number;
  mqttPort: number;
  dataDir: string;
  p?: Started;
  /** A fault holds it down: the supervisor leaves it alone. */
  held?: boolean;
}

export interface Proplet {
  id: string;
  dataDir: string;
  link: Link;
  env: Record<string, string>;
  p?: Started;
  held?: boolean;
}

export interface Broker {
  port: number;
  conf: string;
  p?: Started;
}

const bun = process.execPath;

async function until(what: string, fn: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch((e) => (String(e).includes("exited") ? Promise.reject(e) : false))) return;
    await Bun.sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export class Site {
  managers: Manager[] = [];
  proplets: Proplet[] = [];
  broker?: Broker;
  pg?: Postgres;
  dbUrl?: string;
  token = "";
  readonly ledger: string;

  constructor(
    readonly profile: Profile,
    readonly dir: string,
    private propletCount: number,
  ) {
    this.ledger = join(dir, "ledger");
    mkdirSync(this.ledger, { recursive: true });
  }

  async build(): Promise<void> {
    if (this.profile === "ha") {
      this.pg = await startPostgres();
      const pg = this.pg;
      atExit(() => void pg.stop());
      this.dbUrl = await this.pg.database("chaos");
      const port = await freePort();
      const conf = join(this.dir, "mosquitto.conf");
      mkdirSync(join(this.dir, "mosquitto"), { recursive: true });
      // Persistence on, as a site's broker has it: queued QoS 1 messages survive a broker restart.
      writeFileSync(
        conf,
        [
          `listener ${port} 127.0.0.1`,
          "allow_anonymous true",
          "persistence true",
          `persistence_location ${join(this.dir, "mosquitto")}/`,
          ...(process.getuid?.() === 0 ? ["user root"] : []),
          "max_queued_messages 100000",
          "",
        ].join("\n"),
      );
      this.broker = { port, conf };
      await this.startBroker();
    }
    const count = this.profile === "ha" ? 2 : 1;
    for (let i = 0; i < count; i++) {
      const httpPort = await freePort();
      const m: Manager = {
        name: `m${i + 1}`,
        httpPort,
        mqttPort: await freePort(),
        url: `http://127.0.0.1:${httpPort}`,
        dataDir: join(this.dir, `m${i + 1}`),
      };
      mkdirSync(m.dataDir, { recursive: true });
      if (i > 0) copyFileSync(join(this.managers[0]!.dataDir, "admin.token"), join(m.dataDir, "admin.token"));
      this.managers.push(m);
      await this.startManager(m);
      if (i === 0) this.token = readFileSync(join(m.dataDir, "admin.token"), "utf8").trim();
    }
    const target = this.profile === "ha" ? this.broker!.port : this.managers[0]!.mqttPort;
    for (let i = 0; i < this.propletCount; i++) {
      const id = `chaos-p${i + 1}`;
      const link = await new Link({ host: "127.0.0.1", port: target }).start();
      const dataDir = join(this.dir, id);
      mkdirSync(dataDir, { recursive: true });
      const env: Record<string, string> = { PROPLET_ENTITY_ID: id };
      if (this.profile === "single") {
        const r = await this.api("POST", "/entities", { kind: "proplet", id });
        if (r.status !== 201) throw new Error(`identity ${id}: ${r.status} ${JSON.stringify(r.body)}`);
        env.PROPLET_API_KEY = r.body.api_key;
      }
      const p: Proplet = { id, dataDir, link, env };
      this.proplets.push(p);
      await this.startProplet(p);
    }
    await until(
      "every proplet to be alive",
      async () => {
        for (const p of this.proplets)
          if ((await this.api("GET", `/proplets/${p.id}`)).body?.alive !== true) return false;
        return true;
      },
      30_000,
    );
  }

  async startBroker(): Promise<void> {
    const b = this.broker!;
    const bin = Bun.which("mosquitto", { PATH: `/usr/sbin:/usr/bin:${process.env.PATH}` });
    if (!bin) throw new Error("mosquitto is not installed: apt-get install mosquitto");
    b.p = start([bin, "-c", b.conf], {}, join(this.dir, "mosquitto.log"));
    await until(
      "mosquitto to listen",
      async () => {
        const s = await Bun.connect({ hostname: "127.0.0.1", port: b.port, socket: { data() {} } });
        s.end();
        return true;
      },
      10_000,
    );
  }

  async stopBroker(): Promise<void> {
    if (this.broker?.p) await terminate(this.broker.p.proc);
  }

  async startManager(m: Manager): Promise<void> {
    const common = ["--no-local-proplet", "--liveliness-interval", "1", "--partition-grace", "30"];
    const ha =
      this.profile === "ha" ? ["--storage", "postgres", "--mqtt-url", `mqtt://127.0.0.1:${this.broker!.port}`] : [];
    m.p = start(
      [bun, MAIN, "serve", "--http-port", String(m.httpPort), "--mqtt-port", String(m.mqttPort)].concat([
        "--data-dir",
        m.dataDir,
        ...common,
        ...ha,
      ]),
      { PROPELLER_DB_URL: this.dbUrl, PROPELLER_LOG_LEVEL: "info", PROPELLER_LOG_FORMAT: "json" },
      join(this.dir, `${m.name}.log`),
    );
    const proc = m.p.proc;
    await until(
      `${m.name} to answer /health`,
      async () => {
        if (!running(proc)) throw new Error(`${m.name} exited`);
        const r = await fetch(`${m.url}/health`, { signal: AbortSignal.timeout(2000) });
        const h = (await r.json().catch(() => ({}))) as { role?: string };
        return r.status < 500 || h.role === "standby";
      },
      60_000,
    );
  }

  async startProplet(p: Proplet): Promise<void> {
    p.p = start(
      [bun, MAIN, "proplet"],
      {
        ...p.env,
        PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${p.link.port}`,
        PROPLET_DATA_DIR: p.dataDir,
        PROPLET_DIRS: this.ledger,
        PROPLET_LIVELINESS_INTERVAL: "1",
        PROPLET_MAX_TASKS: "6",
        PROPLET_MQTT_KEEPALIVE: "5",
        PROPELLER_LOG_LEVEL: "info",
        PROPELLER_LOG_FORMAT: "json",
      },
      join(this.dir, `${p.id}.log`),
    );
  }

  /** The manager that says it is active now, if any. */
  async active(): Promise<Manager | undefined> {
    for (const m of this.managers) {
      if (!m.p || !running(m.p.proc)) continue;
      const h = (await fetch(`${m.url}/health`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.json())
        .catch(() => undefined)) as { role?: string } | undefined;
      if (h?.role === "active" || (this.profile === "single" && h)) return m;
    }
    return undefined;
  }

  /** Processes that exited on their own (not by a fault) and were started again, as systemd would. */
  readonly exits: string[] = [];
  private supervising = false;

  /** Restarts a manager or proplet that exited on its own, as a supervisor does (a manager that lost the lease exits). */
  supervise(): void {
    this.supervising = true;
    void (async () => {
      while (this.supervising) {
        await Bun.sleep(1000);
        for (const m of this.managers)
          if (this.supervising && !m.held && m.p && !running(m.p.proc)) {
            this.exits.push(`${m.name} exited (${m.p.proc.exitCode ?? m.p.proc.signalCode})`);
            await this.startManager(m).catch((e) => this.exits.push(`${m.name} restart failed: ${e}`));
          }
        for (const p of this.proplets)
          if (this.supervising && !p.held && p.p && !running(p.p.proc)) {
            this.exits.push(`${p.id} exited (${p.p.proc.exitCode ?? p.p.proc.signalCode})`);
            await this.startProplet(p);
          }
      }
    })();
  }

  private preferred = 0;

  /** One REST call to whichever manager answers; a 503 or no answer is retried on the next for up to `ms`. */
  async api(method: string, path: string, body?: unknown, ms = 60_000): Promise<{ status: number; body: any }> {
    const end = Date.now() + ms;
    for (;;) {
      const m = this.managers[this.preferred % this.managers.length]!;
      try {
        const r = await fetch(`${m.url}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${this.token}`,
            ...(body !== undefined ? { "content-type": "application/json" } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(10_000),
        });
        const text = await r.text();
        if (r.status !== 503) return { status: r.status, body: text ? JSON.parse(text) : undefined };
      } catch {}
      this.preferred++;
      if (Date.now() > end) throw new Error(`${method} ${path}: no manager answered for ${ms} ms`);
      await Bun.sleep(200);
    }
  }

  async close(): Promise<void> {
    this.supervising = false;
    for (const p of this.proplets) if (p.p) await kill9(p.p.proc);
    for (const m of this.managers) if (m.p) await kill9(m.p.proc);
    for (const p of this.proplets) await p.link.close();
    if (this.broker?.p) await kill9(this.broker.p.proc);
  }
}

export type { Subprocess };
