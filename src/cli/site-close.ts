import { tracing } from "../telemetry/tracing.ts";

// serve's stop, in its order: nothing new is started (snapshots, liveness sweeps), the manager writes what it
// holds (heartbeats, results) while storage is open, the local proplet goes offline while the broker still carries
// its last message, the HTTP front stops, then the MQTT clients, the broker, the store, the site's lease and last
// the data dir's lock (a second serve may take the dir only once nothing here writes to it).

/** What serve started, as the stop needs it; absent parts were not started. */
export interface SiteParts {
  snapshots?: { stop(): void };
  idle?: { stop(): void };
  liveness: ReturnType<typeof setInterval>;
  rates?: { stop(): void };
  certWatch?: { stop(): void };
  manager: { shutdown(): Promise<void> };
  agent?: { close(): Promise<void> };
  front: { stop(): void };
  client: { endAsync(): Promise<unknown> };
  proxyClient?: { endAsync(): Promise<unknown> };
  broker?: { close(): Promise<void> };
  store: { close(): void | Promise<void> };
  site?: { close(): Promise<unknown> };
  lock: { release(): void };
}

/** RunningServe's close: once only, a second call does nothing. */
export function closer(p: SiteParts): () => Promise<void> {
  let closed = false;
  return async () => {
    if (closed) return;
    closed = true;
    p.snapshots?.stop();
    p.idle?.stop();
    clearInterval(p.liveness);
    p.rates?.stop();
    p.certWatch?.stop();
    await p.manager.shutdown();
    await p.agent?.close();
    await tracing().flush();
    p.front.stop();
    await p.client.endAsync();
    await p.proxyClient?.endAsync();
    await p.broker?.close();
    await p.store.close();
    await p.site?.close();
    p.lock.release();
  };
}
