import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Server } from "bun";
import { MqttClient } from "mqtt";
import consoleIndex from "../../web/index.html";
import { type BrokerLimits, type BrokerTls, type EmbeddedBroker, startBroker, type WsData } from "../broker/broker.ts";
import { connectMqtt } from "../broker/client.ts";
import { type BusClient, DirectClient } from "../broker/direct.ts";
import { sharedManagerClientId } from "../core/acl.ts";
import { forbidden } from "../core/errors.ts";
import type { EntityKind, Token } from "../core/identity.ts";
import { hostAllowed, hostRefusal, type OriginPolicy, originAllowed, originPolicy } from "../core/origins.ts";
import type { SchedulerName } from "../core/scheduler.ts";
import { TaskState } from "../core/states.ts";
import type { TrustCheck, TrustGate } from "../core/trust-policy.ts";
import { chainCa, spkiHash } from "../core/x509-read.ts";
import { log } from "../log.ts";
import { createApp } from "../manager/api/app.ts";
import type { JoinSite } from "../manager/api/join.ts";
import { type ApiLimits, DEFAULT_API_LIMITS, maxRequestBytes } from "../manager/api/limits.ts";
import { ManagerMetrics } from "../manager/api/prometheus.ts";
import { MqttManagerBus } from "../manager/bus.ts";
import type { ManagerBus } from "../manager/dispatcher.ts";
import { Identities } from "../manager/identities.ts";
import { Manager } from "../manager/manager.ts";
import { LOGIN_CODE_TTL_MS, Sessions } from "../manager/sessions.ts";
import { PropletAgent } from "../proplet/agent.ts";
import { Dispatched } from "../proxy/dispatched.ts";
import type { RegistryClient } from "../proxy/registry.ts";
import { ProxyService } from "../proxy/service.ts";
import { DirInUse, lockDir, lockHolder } from "../storage/lock.ts";
import { openStorage, storageLocation } from "../storage/open.ts";
import type { StorageKind } from "../storage/repository.ts";
import { configureTracing, tracing } from "../telemetry/tracing.ts";
import { BUILD_TIME, COMMIT, PROGRAM, VERSION } from "../version.ts";
import { watchCertificates } from "./cert-watch.ts";
import { ConsoleAssets } from "./console-assets.ts";
import { ownDataDir, removeStaleCopies } from "./data-dir.ts";
import { listen } from "./listener.ts";
import { checkPortsFree } from "./ports.ts";
import type { LocalEnv } from "./proplet.ts";
import { serveReadiness } from "./readiness.ts";
import { logSchema, scheduleSnapshots } from "./snapshots.ts";

/** How long a proplet that stops being heard keeps its runs, by default (issue: edge links drop for minutes). */
export const DEFAULT_PARTITION_GRACE_S = 300;

// Composition root of `propeller serve`: storage, broker, manager, HTTP, the OCI proxy and the local proplet,
// which talks to the manager over MQTT like any other proplet. Everything here comes from options that
// src/cli/serve.ts read from flags and the environment.

export interface ServeOptions {
  storage: StorageKind;
  postgresUrl?: string;
  /** Where this manager's REST API is reached by the site's other managers (default: its own address). */
  advertiseUrl?: string;
  host: string;
  httpPort: number;
  mqttPort: number;
  dataDir: string;
  mqttUrl?: string;
  localProplet: boolean;
  domainId: string;
  channelId: string;
  /** Seconds between the local proplet's heartbeats. */
  livelinessInterval: number;
  /** Seconds without a heartbeat after which a proplet is not alive. */
  livelinessThreshold: number;
  scheduler: SchedulerName;
  /** Tasks the local proplet runs at once. */
  localMaxTasks: number;
  /**
   * The OCI proxy inside serve, with its registry client, chunk size and the registries any proplet may fetch
   * from (besides what the manager dispatched); none: no proxy.
   */
  proxy?: { registry: RegistryClient; chunkSize: number; allowed: string[] };
  /** Local proplet settings only the environment sets (fetch timeout, metrics, cgroup root). */
  localPropletEnv: LocalEnv;
  /** Seconds after which a silent proplet is forgotten; 0 never. */
  staleRemovalS?: number;
  /** Seconds an unreachable proplet's runs are kept before they are settled as lost. */
  partitionGraceS?: number;
  /** HTTPS and WSS on the HTTP port, and MQTT over TLS on `mqttTlsPort` instead of plain MQTT. */
  tls?: BrokerTls & { mqttTlsPort: number };
  /** The embedded broker's packet, connection and QoS 2 bounds (default broker/limits.ts DEFAULT_LIMITS). */
  brokerLimits?: BrokerLimits;
  /**
   * Browser origins besides serve's own that may open the MQTT WebSocket and send changes, each canonical
   * (core/origins.ts parseOrigin); under --no-auth their hosts are names serve answers to.
   */
  allowedOrigins?: string[];
  /** Tokens on REST and credentials on MQTT; false only for `serve --no-auth` on loopback. */
  auth: boolean;
  /** The manager's identity on an external broker (MANAGER_ENTITY_ID, MANAGER_API_KEY). */
  managerCredentials?: { id: string; key: string };
  /** The embedded OCI proxy's identity (PROXY_ENTITY_ID, PROXY_API_KEY); else the manager's on an external broker. */
  proxyCredentials?: { id: string; key: string };
  /** REST body limits and stream caps (`--max-body-mb`, `--max-streams`, `--max-streams-per-token`). */
  apiLimits?: ApiLimits;
  /** Seconds the console's sign-in link works (once); default 600. */
  loginLinkTtlS?: number;
  /** The largest module accepted, in MiB: a task's inline `file` at the manager, any module at the local proplet. */
  maxModuleMb?: number;
  /** A proplet's own labels and TEE count towards requirements (always so with auth off: there are no identities). */
  trustPropletLabels?: boolean;
  /** A portable archive of the store into `<data-dir>/snapshots` every `intervalS`, the newest `keep` kept. */
  snapshots?: { intervalS: number; keep: number };
  /** The site's trust policy (`--trust-policy`): checked at creation, at dispatch and by the proxy. */
  trust?: TrustGate;
  /** Told when this manager waits as a stand-by (serving, not active): systemd's READY=1, and a renewal's way in. */
  onStandby?: (reloadTls: (tls: BrokerTls) => void) => void;
}

export interface RunningServe {
  httpPort: number;
  mqttPort?: number;
  localPropletId?: string;
  /**
   * A renewed certificate (SIGHUP): MQTT over TLS takes it for new connections in place; HTTPS gets a new listener
   * on the same port (Bun.serve cannot swap a certificate in place), open connections finishing on the old one.
   */
  reloadTls(tls: BrokerTls): void;
  close(): Promise<void>;
}

/**
 * With no admin token left (a first start), makes one and writes it to `<data-dir>/admin.token` (0600), where
 * the CLI finds it. Returns the token of that file when it is valid, for the console's sign-in link (which holds a
 * one-time code, never the token).
 */
async function ensureAdminToken(identities: Identities, dataDir: string): Promise<Token | undefined> {
  const file = join(dataDir, "admin.token");
  if (identities.hasAdmin()) {
    const text = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
    return text ? identities.verifyToken(text) : undefined;
  }
  const t = await identities.createToken({ name: "admin", role: "admin" });
  writeFileSync(`${file}.tmp`, `${t.token}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  log.info(`created an admin token in ${file} (mode 0600): the CLI on this machine uses it`);
  return identities.verifyToken(t.token);
}

/**
 * An id kept in the data dir across restarts: the local proplet's (its history and pinned tasks stay valid) and
 * the manager's lease holder's.
 */
function stableId(dataDir: string, name: string): string {
  const f = join(dataDir, name);
  if (existsSync(f)) return readFileSync(f, "utf8").trim();
  const id = crypto.randomUUID();
  writeFileSync(f, id);
  return id;
}

/** What a joining proplet is told (api/join.ts): the CA of serve's chain and its hash, and where the broker is. */
function joinSite(o: ServeOptions, mqttPort?: number): JoinSite {
  let caPem: string | undefined;
  try {
    caPem = o.tls ? chainCa(o.tls.cert, o.tls.clientCa) : undefined;
  } catch (e) {
    log.warn(`no CA for join tokens to pin: ${e instanceof Error ? e.message : e}`);
  }
  return {
    ...(caPem ? { caPem, caHash: spkiHash(caPem) } : {}),
    mqtt: o.mqttUrl ? { url: o.mqttUrl } : { scheme: o.tls ? "mqtts" : "mqtt", port: mqttPort ?? o.mqttPort },
  };
}

export async function serve(o: ServeOptions): Promise<RunningServe> {
  // OpenTelemetry's own variables: the endpoint, the service name, and the share of traces kept (default all).
  configureTracing(
    Bun.env.OTEL_EXPORTER_OTLP_ENDPOINT,
    Bun.env.OTEL_SERVICE_NAME ?? "propeller-manager",
    Number(Bun.env.OTEL_TRACES_SAMPLER_ARG ?? 1),
  );
  // Certificates about to expire are told at start (and daily), whatever this manager's role.
  const certWatch = o.tls ? watchCertificates(o.tls) : undefined;
  // Nothing is written before the data dir is known free and every port can be listened on (ports.ts).
  const holder = lockHolder(o.dataDir);
  if (holder) throw new DirInUse(o.dataDir, holder.pid, holder.what);
  await checkPortsFree(o.host, [
    { port: o.httpPort, flag: "--http-port" },
    ...(o.mqttUrl
      ? []
      : [o.tls ? { port: o.tls.mqttTlsPort, flag: "--mqtt-tls-port" } : { port: o.mqttPort, flag: "--mqtt-port" }]),
  ]);
  // The data dir holds the database and the admin token: its owner's only (made so, or refused).
  ownDataDir(o.dataDir, "--data-dir");
  const lock = lockDir(o.dataDir, "serve");
  removeStaleCopies(o.dataDir);
  const instanceId = crypto.randomUUID();
  const [http, ws] = o.tls ? ["https", "wss"] : ["http", "ws"];
  const loopback = o.host === "0.0.0.0" || o.host === "::" ? "127.0.0.1" : o.host;
  // Managers sharing one PostgreSQL database: one holds the lease and is active; the others wait as stand-bys.
  // Loaded only for postgres, as the backends themselves are.
  const site =
    o.storage === "postgres" && o.postgresUrl
      ? await (await import("./standby.ts")).joinSite({
          ...o,
          postgresUrl: o.postgresUrl,
          instanceId,
          // The holder is this data dir's manager, not this process: restarted, it takes its own lease back at once.
          holder: stableId(o.dataDir, "manager-id"),
          advertised:
            o.advertiseUrl ?? `${http}://${loopback.includes(":") ? `[${loopback}]` : loopback}:${o.httpPort}`,
          // A certificate renewed while standing by is the one the active manager starts with.
          onStandby: (reload) =>
            o.onStandby?.((tls) => {
              reload(tls);
              if (o.tls) o.tls = { ...o.tls, ...tls };
            }),
        })
      : undefined;
  const store = await openStorage(o.storage, { ...o, program: PROGRAM, ...(site ? { fence: site.fence } : {}) });
  logSchema(store);
  // Without authentication anyone may connect as any proplet, so there are no identities to set labels on: what
  // proplets say of themselves is all there is.
  const trustPropletLabels = o.trustPropletLabels === true || !o.auth;
  const identities = new Identities(store, { trustPropletLabels });
  const adminToken = o.auth ? await ensureAdminToken(identities, o.dataDir) : undefined;
  const brokerAuth = o.auth
    ? { authenticate: (id: string, key: string) => identities.verifyEntity(id, key), channel: o }
    : undefined;
  const broker: EmbeddedBroker | undefined = o.mqttUrl
    ? undefined
    : await startBroker(o.host, o.tls ? o.tls.mqttTlsPort : o.mqttPort, brokerAuth, o.tls, o.brokerLimits);
  identities.revoked.subscribe((id) => broker?.disconnect(id));
  const mqttScheme = o.tls ? "mqtts" : "mqtt";
  const mqttAddress =
    o.mqttUrl ?? `${mqttScheme}://${loopback.includes(":") ? `[${loopback}]` : loopback}:${broker!.port}`;

  // serve's own clients get internal identities on the embedded broker; on an external one the manager logs in
  // with the identity it was given.
  const internal = (id: string, kind: EntityKind) =>
    broker ? { username: id, password: identities.internalIdentity(id, kind) } : {};
  const managerLogin = o.managerCredentials
    ? { username: o.managerCredentials.id, password: o.managerCredentials.key }
    : internal(`manager-${instanceId}`, "manager");
  // The managers of a site share one persistent session: results sent during a hand-over wait on the broker.
  const shared = site ? sharedManagerClientId(o) : undefined;
  // On its own embedded broker (and no site to share a session with), the manager skips MQTT: direct.ts.
  const client: BusClient & { handleMessage?: unknown } =
    broker && !shared
      ? new DirectClient(broker.aedes)
      : await connectMqtt(mqttAddress, {
          // A client id is its identity's (core/acl.ts clientIdRefusal), or the site's shared one.
          clientId: shared ?? o.managerCredentials?.id ?? `manager-${instanceId}`,
          username: `manager-${instanceId}`,
          ...managerLogin,
          broker: broker?.aedes,
          persistentSession: Boolean(shared),
        });
  if (shared && client instanceof MqttClient) {
    // Acknowledge a proplet's message only once what it changed is committed: a manager killed between the two
    // leaves the message on the broker for the one that takes over, instead of losing a result.
    client.handleMessage = (_packet, done) =>
      void store.durable().then(
        () => done(),
        () => done(),
      );
  }
  const bus = new MqttManagerBus(client, o, broker ? 0 : 1);
  // The server is listening by the time a round launches.
  const flUrl = () =>
    `${o.advertiseUrl ?? `${http}://${loopback.includes(":") ? `[${loopback}]` : loopback}:${server.port}`}/fl`;
  // What the manager sends proplets to fetch is what the proxy may serve them: every start is noted on its way out.
  const dispatched = o.proxy ? new Dispatched() : undefined;
  // Under a trust policy every start is judged again on its way out (the policy or a tag may have changed since
  // the task was created): a refused one fails its run with the policy's reason, an approved one carries the
  // digest of the module bytes the proplet must get.
  const gate = o.trust;
  const starts: ManagerBus = {
    start: async (m) => {
      if (gate) {
        const c = m.image_url
          ? await gate.image(m.image_url).catch((e) => refusal(m.image_url!, e))
          : m.file
            ? await gate.inline(Buffer.from(m.file, "base64"), signatureOf(store.tasks.get(m.id)?.signature))
            : undefined;
        if (c && !c.allowed) {
          manager.events.trustRefused("dispatch", m.image_url ?? "an inline module", c, m.id);
          throw forbidden(c.reason);
        }
        if (c?.moduleDigest) m.module_digest = c.moduleDigest;
      }
      dispatched?.record(m.image_url, m.proplet_id);
      return bus.start(m);
    },
    stop: (m) => bus.stop(m),
    invoke: (m) => bus.invoke(m),
  };
  const manager = new Manager(store, starts, identities, {
    livelinessThresholdMs: o.livelinessThreshold * 1000,
    scheduler: o.scheduler,
    maxModuleMb: o.maxModuleMb,
    staleRemovalMs: (o.staleRemovalS ?? 0) * 1000,
    partitionGraceMs: (o.partitionGraceS ?? DEFAULT_PARTITION_GRACE_S) * 1000,
    flUrl,
    ...(gate ? { trust: gate } : {}),
  });
  await bus.listen(manager.inbound);
  // The OCI proxy, with its own MQTT client like any other participant.
  // Its own identity when given; on an external broker, else the manager's (a provisioned mosquitto refuses an
  // anonymous client, and serve would exit). Its client id begins with its entity id, as brokers expect.
  const proxyLogin = o.proxyCredentials ?? (broker ? undefined : o.managerCredentials);
  const proxyClient = o.proxy
    ? await connectMqtt(mqttAddress, {
        ...(proxyLogin
          ? { clientId: `${proxyLogin.id}-proxy-${instanceId}`, username: proxyLogin.id, password: proxyLogin.key }
          : { clientId: `proxy-${instanceId}`, ...internal(`proxy-${instanceId}`, "proxy") }),
        broker: broker?.aedes,
      })
    : undefined;
  if (proxyClient && o.proxy)
    await new ProxyService(proxyClient, o, o.proxy.registry, o.proxy.chunkSize, {
      allowed: o.proxy.allowed,
      dispatched: (ref, proplet) => dispatched?.allows(ref, proplet) ?? false,
      // The embedded broker writes the sender's id into a request; an external one vouches for nothing.
      trustPropletId: broker !== undefined,
      ...(gate
        ? {
            trust: async (ref: string) => {
              const c = await gate.image(ref).catch((e) => refusal(ref, e));
              if (!c.allowed) manager.events.trustRefused("proxy", ref, c);
              return c;
            },
          }
        : {}),
    }).listen();
  // Runs started before this process (a restart, a takeover) may still be fetching their module.
  for (const t of dispatched ? store.tasks.listByState([TaskState.Running]) : [])
    dispatched?.record(t.image_url, t.proplet_id);
  manager.recover(site !== undefined);
  // Settles tasks on proplets whose heartbeats stopped; a fraction of the threshold keeps detection prompt.
  const liveness = setInterval(
    () => manager.liveness.check(),
    Math.max(250, Math.min(o.livelinessThreshold * 1000, 5000) / 4),
  );

  let agent: PropletAgent | undefined;
  if (o.localProplet) {
    const localId = stableId(o.dataDir, "local-proplet-id");
    agent = new PropletAgent({
      mqttAddress,
      entityId: localId,
      apiKey: internal(localId, "proplet").password ?? "",
      domainId: o.domainId,
      channelId: o.channelId,
      namespace: "default",
      livelinessInterval: o.livelinessInterval,
      maxTasks: o.localMaxTasks,
      ...o.localPropletEnv,
      flUrl, // its FL requests go to this serve, with its key
      ...(o.maxModuleMb ? { maxModuleMb: o.maxModuleMb } : {}),
      description: "local proplet of propeller serve",
      broker: broker?.aedes,
    });
    await agent.start();
    // Serve HTTP only once the manager knows its local proplet, so a first `tasks start` finds it.
    const deadline = Date.now() + 5000;
    while (!manager.proplets.has(agent.id) && Date.now() < deadline) await Bun.sleep(5);
  }

  const metrics = new ManagerMetrics({
    tasksByState: () => manager.telemetry.tasksByState(),
    queueDepth: () => manager.dispatcher.queueDepth,
    propletsAlive: () => manager.proplets.aliveCount(),
    counters: manager.telemetry.counters,
    mqtt: bus.counts,
    ...(certWatch ? { certificates: certWatch.certs } : {}),
    ...(gate ? { trustRefusals: gate.refusals } : {}),
    build: { version: VERSION, commit: COMMIT },
  });
  // Told to whoever is refused: no path of this machine's disk (the CLI on this machine names the file itself).
  const hint = "the admin token is in admin.token in serve's data dir; `propeller tokens create` makes more";
  const limits = o.apiLimits ?? DEFAULT_API_LIMITS;
  const info = {
    ...{ version: VERSION, commit: COMMIT, buildTime: BUILD_TIME, instanceId, channel: o, storage: store.kind },
    ...(site ? { role: "active" } : {}),
    tls: Boolean(o.tls),
    limits,
    join: joinSite(o, broker?.port),
  };
  const sessions = new Sessions(identities);
  // serve's own origins need its port, known once it listens (the first request comes after that).
  let policy: OriginPolicy | undefined;
  const origins = () =>
    (policy ??= originPolicy({
      tls: Boolean(o.tls),
      host: o.host,
      port: server.port!,
      allowedOrigins: o.allowedOrigins ?? [],
      advertiseUrl: o.advertiseUrl,
    }));
  const ready = serveReadiness(store, broker, client, site);
  const app = createApp(
    manager,
    { ...info, readiness: ready },
    metrics,
    o.auth ? { hint, sessions } : undefined,
    origins,
  );
  const consoleAssets = new ConsoleAssets(consoleIndex);
  const serverOptions = (tls: BrokerTls | undefined, port: number) => ({
    hostname: o.host,
    port,
    maxRequestBodySize: maxRequestBytes(limits),
    // Bundled and minified once, not a dev server with hot reload.
    development: false,
    // Bun's production mode sets SO_REUSEPORT: a second serve on this port would bind too and the kernel would
    // split clients between two sites. One port, one site.
    reusePort: false,
    ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
    fetch(req: Request, srv: Server<WsData>) {
      // Without authentication, a page whose name DNS rebinding pointed at loopback would be "same origin" with
      // serve: only the names serve is configured under are answered.
      if (!o.auth && !hostAllowed(origins(), req.headers.get("host"))) {
        return Response.json({ error: hostRefusal(req.headers.get("host")) }, { status: 421 });
      }
      const url = new URL(req.url);
      if (url.pathname === "/mqtt" && broker) {
        // A web page may open a WebSocket to any address, cookies or not: only serve's own origins (from its
        // configuration, never from the request's Host, which such a page sets too) or configured ones may speak
        // MQTT from a browser. Clients outside a browser send no Origin.
        const origin = req.headers.get("origin");
        if (origin && !originAllowed(origins(), origin)) {
          log.warn(`refused a WebSocket upgrade from origin ${origin}`);
          return new Response(`origin ${origin} may not open an MQTT WebSocket`, { status: 403 });
        }
        // Browsers and mqtt.js ask for the "mqtt" subprotocol and refuse a reply without it.
        const proto = req.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim();
        if (srv.upgrade(req, { data: {}, headers: proto ? { "Sec-WebSocket-Protocol": proto } : {} })) return undefined;
        return new Response("expected a WebSocket upgrade", { status: 400 });
      }
      // The console (web/), bundled by Bun from its HTML and embedded in the compiled executable, compressed.
      if (consoleAssets.claims(req, url.pathname)) {
        return consoleAssets
          .respond(req, url.pathname)
          .then((r) => r ?? app.fetch(req, { ip: srv.requestIP(req)?.address }));
      }
      // The client's address, for the count of failed sign-ins (api/session.ts).
      return app.fetch(req, { ip: srv.requestIP(req)?.address });
    },
    websocket: broker?.websocket ?? { message() {} },
  });
  const server = listen(serverOptions, o.tls, o.httpPort);

  log.info(`propeller serve: REST on ${http}://${o.host}:${server.port}, storage ${storageLocation(o.storage, o)}`);
  if (broker)
    log.info(
      `embedded MQTT broker on ${mqttScheme}://${o.host}:${broker.port} and ${ws}://${o.host}:${server.port}/mqtt`,
    );
  else log.info(`using external MQTT broker ${o.mqttUrl}`);
  if (o.trustPropletLabels && o.auth)
    log.warn("--trust-proplet-labels: a proplet's own labels and TEE claims attract tasks that require them");
  if (!o.auth) {
    log.warn("authentication is OFF (--no-auth): any local process can run code on your proplets");
  } else {
    const tokenFile = join(o.dataDir, "admin.token");
    // After a restore the tokens come from the archive, and no file holds one: naming the file would mislead.
    if (existsSync(tokenFile)) log.info(`REST needs a bearer token: the admin token is in ${tokenFile}`);
    else
      log.info(
        "REST needs a bearer token: this site's admin tokens came with its store (a restore), none is in a file: " +
          `use the site's admin token, or stop serve and run \`propeller tokens create --data-dir ${o.dataDir}\``,
      );
    // A one-time code, not the token: the log is kept (the journal), the code is spent at its first use and dies
    // unused after --login-link-ttl (10 minutes); in the fragment, it is never sent in a request line or a Referer.
    if (adminToken) {
      const ttl = o.loginLinkTtlS ?? LOGIN_CODE_TTL_MS / 1000;
      const code = sessions.mintCode(adminToken, ttl * 1000);
      const url = `${http}://${loopback}:${server.port}/#login=${code}`;
      log.info(`console (sign-in link, works once within ${ttl} s): ${url}`);
    }
  }

  const snapshots = o.snapshots ? scheduleSnapshots(manager, o.dataDir, o.snapshots) : undefined;
  let closed = false;
  return {
    httpPort: server.port,
    mqttPort: broker?.port,
    localPropletId: agent?.id,
    reloadTls: (tls) => {
      broker?.setTls(tls);
      server.reloadTls(tls);
      if (o.tls) o.tls = { ...o.tls, ...tls };
      certWatch?.reload(o.tls ?? tls);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      snapshots?.stop();
      clearInterval(liveness);
      certWatch?.stop();
      await manager.shutdown();
      await agent?.close();
      await tracing().flush();
      server.stop();
      consoleAssets.close();
      await client.endAsync();
      await proxyClient?.endAsync();
      await broker?.close();
      await store.close();
      await site?.close();
      lock.release();
    },
  };
}

/** A module whose registry cannot be asked is refused: what cannot be verified does not run. */
function refusal(ref: string, e: unknown): TrustCheck {
  const why = e instanceof Error ? e.message : String(e);
  return { allowed: false, scope: "default", rule: "none", digest: "", reason: `${ref}: cannot verify: ${why}` };
}

function signatureOf(b64: string | undefined): Uint8Array | undefined {
  return b64 ? new Uint8Array(Buffer.from(b64, "base64")) : undefined;
}
