// Topic names (docs/ARCHITECTURE.md, "Wire protocol"), compatible with upstream (SuperMQ style
// `m/{domain}/c/{channel}/...`).
export interface Channel {
  domainId: string;
  channelId: string;
}

export const base = (c: Channel) => `m/${c.domainId}/c/${c.channelId}`;

export const topics = (c: Channel) => {
  const b = base(c);
  return {
    create: `${b}/control/proplet/create`,
    alive: `${b}/control/proplet/alive`,
    results: `${b}/control/proplet/results`,
    metrics: `${b}/control/proplet/metrics`,
    taskMetrics: `${b}/control/proplet/task_metrics`,
    output: `${b}/control/proplet/output`,
    start: `${b}/control/manager/start`,
    stop: `${b}/control/manager/stop`,
    invoke: `${b}/control/manager/invoke`,
    invokeResults: `${b}/control/proplet/invoke_results`,
    registryRequest: `${b}/registry/proplet`,
    registryChunks: `${b}/registry/server`,
    propletAll: `${b}/control/proplet/+`,
  };
};

/** Defaults shared by `serve` and `proplet`, so a proplet joins a default serve with nothing set. */
export const DEFAULT_DOMAIN_ID = "default";
export const DEFAULT_CHANNEL_ID = "default";

/** Upstream's FL update fallback, outside the channel's prefix: `fl/rounds/{round}/updates/{proplet}`. */
export const FL_UPDATES = "fl/rounds/+/updates/+";
export const flUpdateTopic = (round: string, proplet: string) => `fl/rounds/${round}/updates/${proplet}`;

/** The round and proplet a topic names, when it is an FL update topic. */
export function parseFlUpdateTopic(topic: string): { round: string; proplet: string } | undefined {
  const m = /^fl\/rounds\/([^/+#]+)\/updates\/([^/+#]+)$/.exec(topic);
  return m ? { round: m[1]!, proplet: m[2]! } : undefined;
}
