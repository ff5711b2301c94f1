import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import consoleHtml from "../../web/index.html" with { type: "text" };
import { type EmbeddedBroker, startBroker, type WsData } from "../broker/broker.ts";
import { connectMqtt } from "../broker/client.ts";
import type { SchedulerName } from "../core/scheduler.ts";
import { log } from "../log.ts";
import { PropletAgent } from "../proplet/agent.ts";
import { parseSeconds } from "../proplet/config.ts";
import { chunkSizeFromEnv, registryFromEnv } from "../proxy/command.ts";
import { ProxyService } from "../proxy/service.ts";
import { openSqlite } from "../storage/sqlite/index.ts";
import { VERSION } from "../version.ts";
import { createApp, MAX_BODY_BYTES } from "./api/app.ts";
import { MqttManagerBus } from "./bus.ts";
import { Coordinator } from "./coordinator.ts";
import { ManagerMetrics } from "./metrics.ts";
import { ManagerService } from "./service.ts";

// Composition root of `propeller serve`: storage, broker, manager, HTTP, and the local proplet, which talks to
// the manager over MQTT like any other proplet.

export interface ServeOptions {
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
  /** Run the OCI proxy inside serve. */
  proxy: boolean;
  /** Seconds after which a silent proplet is forgotten; 0 never. */
  staleRemovalS?: number;
}

export interface RunningServe {
  httpPort: number;
  mqttPort?: number;
  localPropletId?: string;
  close(): Promise<void>;
}

/** The local proplet keeps its id across restarts, so its history and pinned tasks stay valid. */
function localPropletId(dataDir: string): string {
  const f = join(dataDir, "local-proplet-id");
  if (existsSync(f)) return readFileSync(f, "utf8").trim();
  const id = crypto.randomUUID();
  writeFileSync(f, id);
  return id;
}

export async function serve(o: ServeOptions): Promise<RunningServe> {
  mkdirSync(o.dataDir, { recursive: true });
  const dbPath = join(o.dataDir, "propeller.db");
  const store = openSqlite(dbPath);
  const broker: EmbeddedBroker | undefined = o.mqttUrl ? undefined : await startBroker(o.host, o.mqttPort);
  const loopback = o.host === "0.0.0.0" || o.host === "::" ? "127.0.0.1" : o.host;
  const mqttAddress = o.mqttUrl ?? `mqtt://${loopback.includes(":") ? `[${loopback}]` : loopback}:${broker!.port}`;

  const instanceId = crypto.randomUUID();
  const client = await connectMqtt(mqttAddress, {
    clientId: `manager-${instanceId}`,
    username: `manager-${instanceId}`,
    broker: broker?.aedes,
  });
  const bus = new MqttManagerBus(client, o, broker ? 0 : 1);
  const svc = new ManagerService(store, bus, {
    livelinessThresholdMs: o.livelinessThreshold * 1000,
    scheduler: o.scheduler,
    staleRemovalMs: (o.staleRemovalS ?? 0) * 1000,
  });
  const groups = new Coordinator(store, svc);
  await bus.listen(svc);
  // The OCI proxy, with its own MQTT client like any other participant.
  const proxyClient = o.proxy
    ? await connectMqtt(mqttAddress, { clientId: `proxy-${instanceId}`, broker: broker?.aedes })
    : undefined;
  if (proxyClient) await new ProxyService(proxyClient, o, registryFromEnv(o.dataDir), chunkSizeFromEnv()).listen();
  svc.recover();
  groups.resume();
  // Settles tasks on proplets whose heartbeats stopped; a fraction of the threshold keeps detection prompt.
  const liveness = setInterval(
    () => svc.checkLiveness(),
    Math.max(250, Math.min(o.livelinessThreshold * 1000, 5000) / 4),
  );

  let agent: PropletAgent | undefined;
  if (o.localProplet) {
    agent = new PropletAgent({
      mqttAddress,
      entityId: localPropletId(o.dataDir),
      apiKey: "",
      domainId: o.domainId,
      channelId: o.channelId,
      namespace: "default",
      livelinessInterval: o.livelinessInterval,
      maxTasks: o.localMaxTasks,
      fetchTimeoutMs: parseSeconds("PROPLET_FETCH_TIMEOUT", process.env.PROPLET_FETCH_TIMEOUT || undefined, 60) * 1000,
      metricsInterval:
        process.env.PROPLET_METRICS_INTERVAL === "0"
          ? 0
          : parseSeconds("PROPLET_METRICS_INTERVAL", process.env.PROPLET_METRICS_INTERVAL || undefined, 10),
      cgroupRoot: process.env.PROPLET_CGROUP_ROOT || undefined,
      description: "local proplet of propeller serve",
      broker: broker?.aedes,
    });
    await agent.start();
    // Serve HTTP only once the manager knows its local proplet, so a first `tasks start` finds it.
    const deadline = Date.now() + 5000;
    while (!svc.hasProplet(agent.id) && Date.now() < deadline) await Bun.sleep(5);
  }

  const metrics = new ManagerMetrics({
    tasksByState: () => svc.tasksByState(),
    queueDepth: () => svc.queueDepth(),
    propletsAlive: () => svc.propletsAlive(),
    counters: svc.counters,
    mqtt: bus.counts,
  });
  const app = createApp(svc, groups, { version: VERSION, instanceId }, metrics);
  const server = Bun.serve<WsData>({
    hostname: o.host,
    port: o.httpPort,
    maxRequestBodySize: MAX_BODY_BYTES + (1 << 20),
    fetch(req, srv) {
      const url = new URL(req.url);
      if (url.pathname === "/mqtt" && broker) {
        // Browsers and mqtt.js ask for the "mqtt" subprotocol and refuse a reply without it.
        const proto = req.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim();
        if (srv.upgrade(req, { data: {}, headers: proto ? { "Sec-WebSocket-Protocol": proto } : {} })) return undefined;
        return new Response("expected a WebSocket upgrade", { status: 400 });
      }
      if (req.method === "GET" && (url.pathname === "/" || url.pathname === "/index.html")) {
        return new Response(consoleHtml as unknown as string, {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      }
      return app.fetch(req);
    },
    websocket: broker?.websocket ?? { message() {} },
  });

  log.info(`propeller serve: REST on http://${o.host}:${server.port}, storage ${dbPath}`);
  if (broker)
    log.info(`embedded MQTT broker on mqtt://${o.host}:${broker.port} and ws://${o.host}:${server.port}/mqtt`);
  else log.info(`using external MQTT broker ${o.mqttUrl}`);
  if (o.host === "127.0.0.1" || o.host === "localhost" || o.host === "::1") {
    log.info("listening on loopback only: there is no authentication yet; use --host to expose it deliberately");
  } else {
    log.warn(
      `listening on ${o.host} WITHOUT authentication: anyone who can reach this host can run code on your proplets`,
    );
  }

  let closed = false;
  return {
    httpPort: server.port!,
    mqttPort: broker?.port,
    localPropletId: agent?.id,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(liveness);
      await svc.shutdown();
      await agent?.close();
      server.stop(true);
      await client.endAsync();
      await proxyClient?.endAsync();
      await broker?.close();
      store.close();
    },
  };
}
