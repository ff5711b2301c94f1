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
    registryRequest: `${b}/registry/proplet`,
    registryChunks: `${b}/registry/server`,
    propletAll: `${b}/control/proplet/+`,
  };
};

/** Defaults shared by `serve` and `proplet`, so a proplet joins a default serve with nothing set. */
export const DEFAULT_DOMAIN_ID = "default";
export const DEFAULT_CHANNEL_ID = "default";
