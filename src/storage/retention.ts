/** Metrics samples kept per proplet and per task, in every backend. */
export const METRICS_RETENTION = 1000;
