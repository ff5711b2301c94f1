import mqtt from "mqtt";
import { authHeaders } from "./lib.ts";

// The benchmarks' REST client: tasks created and started over HTTP by C concurrent clients, each waiting for its
// task's result on MQTT (an observer subscribed to the results topic). The same client drives serve (dispatch.ts,
// burst.ts) and the floor (floor.ts), so the two figures differ only by what answers.

const RESULTS = "m/default/c/default/control/proplet/results";

export interface LoadClient {
  post(path: string, body?: unknown): Promise<any>;
  /** Starts a created task and resolves once its result was seen on MQTT. */
  startAndSeen(id: string): Promise<void>;
  /** `tasks` tasks created and started by `concurrency` clients, each waiting for its result before the next. */
  burst(tasks: number, concurrency: number, task: (i: number) => unknown, onProgress?: () => void): Promise<void>;
  /** Tasks handed out by the running burst, and results seen. */
  readonly created: number;
  readonly resultsSeen: number;
  close(): Promise<void>;
}

export async function loadClient(
  url: string,
  mqttPort: number,
  token: string,
  login: { username?: string; password?: string },
): Promise<LoadClient> {
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
    clientId: login.username ?? "bench", // the broker takes an identity's own id only
    ...login,
  });
  const waiting = new Map<string, () => void>();
  let resultsSeen = 0;
  let created = 0;
  sub.on("message", (_t, payload) => {
    resultsSeen++;
    const id = JSON.parse(payload.toString()).task_id as string;
    waiting.get(id)?.();
  });
  await sub.subscribeAsync(RESULTS, { qos: 0 });

  async function post(path: string, body?: unknown): Promise<any> {
    const res = await fetch(`${url}${path}`, {
      method: "POST",
      headers: body ? { ...authHeaders(token), "content-type": "application/json" } : authHeaders(token),
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const data = await res.json();
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  }
  async function startAndSeen(id: string): Promise<void> {
    const seen = new Promise<void>((resolve) => waiting.set(id, resolve));
    await post(`/tasks/${id}/start`);
    await seen;
    waiting.delete(id);
  }
  return {
    post,
    startAndSeen,
    async burst(tasks, concurrency, task, onProgress) {
      created = 0;
      const progress = onProgress ? setInterval(onProgress, 2000) : undefined;
      try {
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (created < tasks) {
              const i = created++;
              const { id } = await post("/tasks", task(i));
              await startAndSeen(id);
            }
          }),
        );
      } finally {
        clearInterval(progress);
      }
    },
    get created() {
      return created;
    },
    get resultsSeen() {
      return resultsSeen;
    },
    close: async () => void (await sub.endAsync()),
  };
}
