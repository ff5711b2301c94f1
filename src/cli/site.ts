import { type EmbeddedBroker, startBroker } from "../broker/broker.ts";
import { connectMqtt } from "../broker/client.ts";
import { type BusClient, DirectClient } from "../broker/direct.ts";
import { sharedManagerClientId } from "../core/acl.ts";
import { forbidden } from "../core/errors.ts";
import type { EntityKind } from "../core/identity.ts";
import { TaskState } from "../core/states.ts";
import { judgeModule } from "../core/trust-policy.ts";
import { chainCa, spkiHash } from "../core/x509-read.ts";
import { log } from "../log.ts";
import { createApp } from "../manager/api/app.ts";
import type { JoinSite } from "../manager/api/join.ts";
import { DEFAULT_API_LIMITS } from "../manager/api/limits.ts";
import { ManagerMetrics } from "../manager/api/prometheus.ts";
import { MqttManagerBus } from "../manager/bus.ts";
import type { ManagerBus } from "../manager/dispatcher.ts";
import { Identities } from "../manager/identities.ts";
import { Manager } from "../manager/manager.ts";
import { RateSampler } from "../manager/rates.ts";
import { Sessions } from "../manager/sessions.ts";
import { Dispatched } from "../proxy/dispatched.ts";
import { ProxyService } from "../proxy/service.ts";
import { DirInUse, lockDir, lockHolder } from "../storage/lock.ts";
import { openStorage, storageLocation } from "../storage/open.ts";
import { configureTracing } from "../telemetry/tracing.ts";
import { BUILD_TIME, COMMIT, PROGRAM, VERSION } from "../version.ts";
import { ensureAdminToken, tellAdminAccess } from "./admin-token.ts";
import { watchCertificates } from "./cert-watch.ts";
import { keptId, LOCAL_PROPLET_ID_FILE, ownDataDir, removeStaleCopies, stableId } from "./data-dir.ts";
import { frontOrigins, startHttpFront } from "./http-front.ts";
import { IdleRelease, releaseMemory } from "./idle-release.ts";
import { startLocalProplet } from "./local-proplet.ts";
import { checkPortsFree } from "./ports.ts";
import { serveReadiness } from "./readiness.ts";
import { closer } from "./site-close.ts";
import { DEFAULT_PARTITION_GRACE_S, type RunningServe, type ServeOptions } from "./site-options.ts";
import { logSchema, scheduleSnapshots } from "./snapshots.ts";

// Composition root of `propeller serve`: storage, broker, manager, HTTP, the OCI proxy and the local proplet,
// which talks to the manager over MQTT like any other proplet. Everything here comes from options that
// src/cli/serve-options.ts checked (their shape: site-options.ts); the HTTP front is http-front.ts, the local
// proplet local-proplet.ts, the admin token and sign-in link admin-token.ts, the stop site-close.ts.

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
  if (o.storage === "postgres" && o.postgresUrl && !o.advertiseUrl && o.host !== "127.0.0.1" && o.host !== "::1")
    log.warn(
      `--storage postgres without --advertise-url: stand-bys forward to ${http}://${loopback}:${o.httpPort}, which on another machine is that stand-by itself; give the address the other managers reach this one at`,
    );
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
  // The bus listens from before the connection: the messages a shared session kept come with its CONNACK.
  let early: MqttManagerBus | undefined;
  const listening = (c: BusClient) => (early = new MqttManagerBus(c, o, broker ? 0 : 1));
  const client: BusClient & { handleMessage?: unknown } =
    broker && !shared
      ? new DirectClient(broker.aedes)
      : await connectMqtt(mqttAddress, {
          onClient: (c) => {
            // Acknowledge a proplet's message only once what it changed is committed: a manager killed between the
            // two leaves the message on the broker for the one that takes over, instead of losing a result.
            if (shared)
              c.handleMessage = (_packet, done) =>
                void store.durable().then(
                  () => done(),
                  () => done(),
                );
            listening(c);
          },
          // A client id is its identity's (core/acl.ts clientIdRefusal), or the site's shared one.
          clientId: shared ?? o.managerCredentials?.id ?? `manager-${instanceId}`,
          username: `manager-${instanceId}`,
          ...managerLogin,
          broker: broker?.aedes,
          persistentSession: Boolean(shared),
        });
  const bus = early ?? listening(client);
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
        const j = await judgeModule(gate, { ...m, signature: store.tasks.get(m.id)?.signature });
        if (j && !j.check.allowed) {
          manager.events.trustRefused("dispatch", j.module, j.check, m.id);
          throw forbidden(j.check.reason);
        }
        if (j?.check.moduleDigest) m.module_digest = j.check.moduleDigest;
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
    localPropletId: () => keptId(o.dataDir, LOCAL_PROPLET_ID_FILE),
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
              const { check } = (await judgeModule(gate, { image_url: ref }))!;
              if (!check.allowed) manager.events.trustRefused("proxy", ref, check);
              return check;
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

  const agent = o.localProplet
    ? await startLocalProplet(o, {
        mqttAddress,
        apiKey: (id) => internal(id, "proplet").password ?? "",
        flUrl,
        broker,
        manager,
      })
    : undefined;

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
  // The overview's rates over time: the same totals as /metrics, sampled into a bounded ring.
  const rates = new RateSampler(() => ({
    started: manager.telemetry.counters.starts,
    completed: manager.telemetry.counters.completions,
    failed: manager.telemetry.counters.failures,
    mqtt_received: bus.counts.received,
    mqtt_sent: bus.counts.sent,
    queue_depth: manager.dispatcher.queueDepth,
    clients: broker ? broker.aedes.connectedClients : null,
  })).start();
  // Told to whoever is refused: no path of this machine's disk (the CLI on this machine names the file itself).
  const hint = "the admin token is in admin.token in serve's data dir; `propeller tokens create` makes more";
  const limits = o.apiLimits ?? DEFAULT_API_LIMITS;
  const info = {
    ...{ version: VERSION, commit: COMMIT, buildTime: BUILD_TIME, instanceId, channel: o, storage: store.kind },
    ...(site ? { role: "active" } : {}),
    tls: Boolean(o.tls),
    limits,
    join: joinSite(o, broker?.port),
    rates,
  };
  const sessions = new Sessions(identities);
  // serve's own origins need its port, known once it listens (the first request comes after that).
  const origins = frontOrigins(o, () => server.port);
  const ready = serveReadiness(store, broker, client, site);
  const app = createApp(
    manager,
    { ...info, readiness: ready },
    metrics,
    o.auth ? { hint, sessions } : undefined,
    origins,
  );
  const front = startHttpFront(o, limits, origins, broker, app);
  const server = front.server;

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
    tellAdminAccess(o.dataDir, adminToken, sessions, `${http}://${loopback}:${server.port}`, o.loginLinkTtlS);
  }

  const snapshots = o.snapshots ? scheduleSnapshots(manager, o.dataDir, o.snapshots) : undefined;
  // Memory back after a burst: once tasks stopped ending for a few seconds (idle-release.ts).
  const idle = new IdleRelease((deep) => releaseMemory(store, deep));
  manager.events.taskFinal.subscribe(() => idle.activity());
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
    close: closer({
      snapshots,
      idle,
      liveness,
      rates,
      certWatch,
      manager,
      agent,
      front,
      client,
      proxyClient,
      broker,
      store,
      site,
      lock,
    }),
  };
}

/** A module whose registry cannot be asked is refused: what cannot be verified does not run. */
