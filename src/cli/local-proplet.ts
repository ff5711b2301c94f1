import type { EmbeddedBroker } from "../broker/broker.ts";
import type { Manager } from "../manager/manager.ts";
import { PropletAgent } from "../proplet/agent.ts";
import { LOCAL_PROPLET_ID_FILE, stableId } from "./data-dir.ts";
import type { ServeOptions } from "./site-options.ts";

// serve's local proplet: a PropletAgent in serve's process that talks to the manager over MQTT (the embedded
// broker's in-process client, or the external broker) like any other proplet, with an internal identity. Apart
// from the composition (site.ts) so that the local proplet's settings change here only.

type LocalOptions = Pick<
  ServeOptions,
  "dataDir" | "domainId" | "channelId" | "livelinessInterval" | "localMaxTasks" | "localPropletEnv" | "maxModuleMb"
>;

/**
 * Starts the local proplet, and returns once the manager knows it (at most 5 s): serve answers HTTP only after
 * that, so a first `tasks start` finds it.
 */
export async function startLocalProplet(
  o: LocalOptions,
  site: {
    mqttAddress: string;
    /** Its key on the embedded broker (none on an external one). */
    apiKey: (id: string) => string;
    /** Where its FL requests go: this serve, with its key. */
    flUrl: () => string;
    broker: EmbeddedBroker | undefined;
    manager: Manager;
  },
): Promise<PropletAgent> {
  // Its id is kept in the data dir: its history and pinned tasks stay valid across restarts.
  const localId = stableId(o.dataDir, LOCAL_PROPLET_ID_FILE);
  const agent = new PropletAgent({
    mqttAddress: site.mqttAddress,
    entityId: localId,
    apiKey: site.apiKey(localId),
    domainId: o.domainId,
    channelId: o.channelId,
    namespace: "default",
    livelinessInterval: o.livelinessInterval,
    maxTasks: o.localMaxTasks,
    ...o.localPropletEnv,
    flUrl: site.flUrl, // its FL requests go to this serve, with its key
    ...(o.maxModuleMb ? { maxModuleMb: o.maxModuleMb } : {}),
    description: "local proplet of propeller serve",
    broker: site.broker?.aedes,
  });
  await agent.start();
  // Serve HTTP only once the manager knows its local proplet, so a first `tasks start` finds it.
  const deadline = Date.now() + 5000;
  while (!site.manager.proplets.has(agent.id) && Date.now() < deadline) await Bun.sleep(5);
  return agent;
}
