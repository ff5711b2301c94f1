// A proplet as a OneDM SDF document, the shape upstream's `pkg/sdf` builds for `GET /proplets/{id}/sdf`: only the
// title names the proplet; the rest describes what any proplet has, does and says. Pure.

const str = { type: "string" };
const strings = { type: "array", items: str };
const count = { type: "integer", minimum: 0 };
const ref = (name: string) => ({ sdfRef: `#/sdfThing/Proplet/sdfData/${name}` });

export function propletSdf(p: { id: string; name: string }) {
  return {
    info: { title: `Propeller Proplet: ${p.name} (${p.id})`, version: "1.0", license: "Apache-2.0" },
    sdfThing: {
      Proplet: {
        description: "A Propeller proplet — an edge node that executes WebAssembly tasks",
        sdfProperty: {
          id: { description: "Unique proplet identifier", type: "string", readOnly: true },
          name: { description: "Human-readable proplet name", type: "string" },
          alive: {
            description: "Whether the proplet sent a heartbeat within the liveness window",
            type: "boolean",
            readOnly: true,
            observable: true,
          },
          task_count: {
            description: "Number of tasks currently running on this proplet",
            type: "integer",
            readOnly: true,
            minimum: 0,
            observable: true,
          },
          metadata: ref("PropletMetadata"),
        },
        sdfAction: {
          start_task: { description: "Dispatch a WebAssembly task to this proplet", sdfInputData: ref("TaskDispatch") },
          stop_task: { description: "Stop a running task on this proplet", sdfInputData: ref("TaskStop") },
        },
        sdfEvent: {
          heartbeat: {
            description: "Periodic liveness signal from the proplet",
            sdfOutputData: ref("HeartbeatPayload"),
          },
          task_result: {
            description: "Emitted when a task finishes (success or failure)",
            sdfOutputData: ref("TaskResult"),
          },
        },
        sdfData: {
          PropletMetadata: {
            description: "Static metadata reported by the proplet at registration",
            type: "object",
            properties: {
              description: str,
              tags: strings,
              location: str,
              ip: str,
              environment: str,
              os: str,
              hostname: str,
              cpu_arch: str,
              total_memory_bytes: count,
              proplet_version: str,
              wasm_runtime: str,
            },
          },
          TaskDispatch: {
            description: "Payload used to dispatch a task to the proplet",
            type: "object",
            properties: {
              id: str,
              name: str,
              image_url: str,
              cli_args: strings,
              inputs: strings,
              env: { type: "object", additionalProperties: str },
              daemon: { type: "boolean" },
              encrypted: { type: "boolean" },
              kbs_resource_path: str,
            },
            required: ["id", "name"],
          },
          TaskStop: {
            description: "Payload used to stop a running task on the proplet",
            type: "object",
            properties: { id: { description: "Identifier of the task to stop", type: "string" } },
            required: ["id"],
          },
          HeartbeatPayload: {
            description: "Payload of a proplet heartbeat event",
            type: "object",
            properties: { proplet_id: str, name: str, task_count: count, alive: { type: "boolean" } },
          },
          TaskResult: {
            description: "Result payload emitted after a task completes",
            type: "object",
            properties: {
              task_id: str,
              proplet_id: str,
              state: { type: "string", enum: ["Completed", "Failed", "Skipped", "Interrupted"] },
              results: {
                description: "Key-value output produced by the task; keys and value types depend on the wasm module",
                type: "object",
              },
              error: str,
            },
          },
        },
      },
    },
  };
}
