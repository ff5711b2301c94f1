import { defineCommand } from "citty";
import { ManagerEvent } from "../core/events.ts";
import { type Experiment, type Round, roundEvent } from "../core/fl-experiment.ts";
import { action, int, readUserFile, UsageError } from "./args.ts";
import { api, resolveId, sse, urlArg } from "./client.ts";
import { roundLine } from "./fl-line.ts";
import { printJson, printRecord, printTable } from "./output.ts";

// `propeller fl`: upstream's configure, task, update, update-cbor and round-status with their flags, and ours:
// status (experiments and their rounds), models and datasets. `configure --wait` prints a line per round.

function jsonFlag(name: string, text: string | undefined): Record<string, unknown> {
  // Upstream sends an empty JSON flag as {}.
  if (!text) return {};
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v;
  } catch (e) {
    throw new UsageError(`--${name}: not a JSON object: ${e instanceof Error ? e.message : e}`);
  }
}

type ExperimentOut = Omit<Experiment, "task_file"> & { participant_names?: string[] };

const roundRow = (e: ExperimentOut, r: Round) => roundEvent(e, r, r.ended_at ?? r.started_at);

const configure = defineCommand({
  meta: {
    description: "Start an experiment: one or more rounds of training on the participants (POST /fl/experiments)",
  },
  args: {
    "experiment-id": { type: "string", description: "the experiment's id (required)" },
    "round-id": { type: "string", description: "the first round's id (default: <experiment>-r<n>)" },
    "model-ref": { type: "string", description: "the model to start from (default fl/models/global_model_v0)" },
    participants: { type: "string", description: "proplet ids or names, comma-separated" },
    hyperparams: { type: "string", description: 'hyperparameters as a JSON object, e.g. \'{"epochs":2,"lr":0.1}\'' },
    "k-of-n": { type: "string", description: "updates that complete a round (default: every participant)" },
    "timeout-s": { type: "string", description: "a round's deadline in seconds (default 60)" },
    "task-wasm-image": { type: "string", description: "the client module as an OCI image reference" },
    "task-file": { type: "string", description: "the client module as a local .wasm file (instead of an image)" },
    signature: {
      type: "string",
      description:
        "--task-file's detached signature, for a site whose trust policy requires one (as tasks create --signature)",
    },
    rounds: { type: "string", description: "rounds to run back to back (default 1)" },
    strategy: { type: "string", description: "fedavg | fedprox | median | trimmed_mean (default fedavg)" },
    "min-participants": { type: "string", description: "updates a round needs at its deadline (default 1)" },
    wait: {
      type: "boolean",
      description: "print a line per round until the experiment ends; exit 1 unless it completed",
    },
    ...urlArg,
  },
  run: ({ args }) =>
    action(async () => {
      if (!args["experiment-id"])
        throw new UsageError("fl configure needs --experiment-id ID: the experiment to configure");
      const body: Record<string, unknown> = {
        experiment_id: args["experiment-id"],
        participants: (args.participants ?? "")
          .split(",")
          .map((p) => p.trim())
          .filter(Boolean),
        hyperparams: jsonFlag("hyperparams", args.hyperparams),
      };
      if (args["round-id"]) body.round_id = args["round-id"];
      if (args["model-ref"]) body.model_ref = args["model-ref"];
      if (args["k-of-n"]) body.k_of_n = int("k-of-n", args["k-of-n"], 1, 1e6);
      if (args["timeout-s"]) body.timeout_s = int("timeout-s", args["timeout-s"], 1, 86_400);
      if (args["task-wasm-image"]) body.task_wasm_image = args["task-wasm-image"];
      if (args["task-file"]) body.task_file = readUserFile(args["task-file"]).toString("base64");
      if (args.signature) {
        if (!body.task_file) throw new UsageError("--signature signs --task-file, an inline module: give it too");
        body.signature = readUserFile(args.signature).toString("base64");
      }
      if (args.rounds) body.rounds = int("rounds", args.rounds, 1, 1000);
      if (args.strategy) body.strategy = args.strategy;
      if (args["min-participants"]) body.min_participants = int("min-participants", args["min-participants"], 1, 1e6);
      // Listening before configuring: the first round's lines cannot be missed.
      // The stream is closed however this ends (a refused configure too): its open request kept the process alive.
      const close = new AbortController();
      const events = args.wait ? sse(args, "/events?types=fl", close.signal) : undefined;
      const first = events?.next();
      first?.catch(() => {}); // an abort at the end rejects the read still waiting
      try {
        const r = await api<{ experiment_id: string; round_id: string }>(args, "POST", "/fl/experiments", body);
        if (!events || !first) return args.json ? printJson(r) : process.stdout.write(`${JSON.stringify(r)}\n`);
        const end = await follow(args, r.experiment_id, events, first);
        if (end !== "completed") process.exitCode = 1;
      } finally {
        close.abort();
      }
    }),
});

/** Prints the experiment's round events until it ends; returns its final state. */
async function follow(
  conn: { url: string; json?: boolean },
  id: string,
  events: AsyncGenerator<{ event: string; data: string }>,
  first: Promise<IteratorResult<{ event: string; data: string }>>,
): Promise<string> {
  const state = async () =>
    (await api<ExperimentOut>(conn as never, "GET", `/fl/experiments/${encodeURIComponent(id)}`)).state;
  // Rounds that ended before the stream opened (an experiment that failed at once) are read, not awaited.
  if ((await state()) !== "running") {
    const e = await api<ExperimentOut>(conn as never, "GET", `/fl/experiments/${encodeURIComponent(id)}`);
    for (const r of e.round_list) process.stdout.write(`${roundLine(roundRow(e, r))}\n`);
    return e.state;
  }
  let next = first;
  for (;;) {
    const m = await next;
    if (m.done) return state();
    const e = ManagerEvent.safeParse(JSON.parse(m.value.data));
    if (e.success && e.data.type === "fl" && e.data.experiment_id === id) {
      process.stdout.write(conn.json ? `${m.value.data}\n` : `${roundLine(e.data)}\n`);
      const last = e.data.index === e.data.rounds || e.data.state === "failed" || e.data.state === "stopped";
      if (last && e.data.state !== "running") return state();
    }
    next = events.next();
  }
}

const status = defineCommand({
  meta: { description: "Experiments, or one experiment's rounds: updates, model versions, metrics" },
  args: { id: { type: "positional", description: "an experiment id", required: false }, ...urlArg },
  run: ({ args }) =>
    action(async () => {
      if (!args.id) {
        const { experiments } = await api<{ experiments: ExperimentOut[] }>(args, "GET", "/fl/experiments");
        if (args.json) return printJson(experiments);
        const rows = experiments.map((e) => ({
          ...e,
          progress: `${e.round_list.filter((r) => r.state === "completed").length}/${e.rounds}`,
          model: e.round_list.findLast((r) => r.new_model_version !== undefined)?.new_model_version ?? "",
        }));
        printTable(rows, [
          ["EXPERIMENT", "experiment_id"],
          ["STATE", "state"],
          ["ROUNDS", "progress"],
          ["STRATEGY", "strategy"],
          ["MODEL", "model"],
          ["ERROR", "error"],
        ]);
        return;
      }
      const e = await api<ExperimentOut>(
        args,
        "GET",
        `/fl/experiments/${encodeURIComponent(await resolveId(args, "experiment", args.id))}`,
      );
      if (args.json) return printJson(e);
      process.stdout.write(
        `${e.experiment_id}: ${e.state}, ${e.strategy}, participants ${(e.participant_names ?? e.participants).join(", ")}\n`,
      );
      for (const r of e.round_list) process.stdout.write(`${roundLine(roundRow(e, r))}\n`);
    }),
});

const models = defineCommand({
  meta: { description: "The model registry: versions, or one version's model as JSON" },
  args: {
    version: {
      type: "positional",
      description: "a model version: 3 or v3, as `fl models` lists them",
      required: false,
    },
    ...urlArg,
  },
  run: ({ args }) =>
    action(async () => {
      if (args.version !== undefined) {
        // As the listing shows them (`v0 v1`): the listing's words work here (the error named a --version flag).
        const v = int("VERSION (a model version)", args.version.replace(/^v/i, ""), 0, 1e9);
        return printJson(await api(args, "GET", `/fl/models/${v}`));
      }
      const r = await api<{ versions: number[] }>(args, "GET", "/fl/models");
      if (args.json) return printJson(r);
      process.stdout.write(`${r.versions.length ? r.versions.map((v) => `v${v}`).join(" ") : "no models"}\n`);
    }),
});

const datasets = defineCommand({
  meta: { description: "The data store: which proplets have a dataset, or one's (with --upload FILE, store it)" },
  args: {
    id: { type: "positional", description: "a proplet id", required: false },
    upload: { type: "string", description: 'a JSON file {"data":[…]} to store as this proplet\'s dataset' },
    ...urlArg,
  },
  run: ({ args }) =>
    action(async () => {
      if (args.upload) {
        if (!args.id) throw new UsageError("--upload needs the proplet id the dataset is for");
        const body = jsonFlag("upload", readUserFile(args.upload).toString("utf8"));
        const r = await api(args, "POST", `/fl/datasets/${encodeURIComponent(args.id)}`, body);
        return args.json ? printJson(r) : printRecord(r as Record<string, unknown>);
      }
      if (args.id) {
        const d = await api<Record<string, unknown>>(args, "GET", `/fl/datasets/${encodeURIComponent(args.id)}`);
        if (args.json) return printJson(d);
        return printRecord({ proplet_id: d.proplet_id, schema: d.schema, size: d.size });
      }
      const r = await api<{ clients: string[]; count: number }>(args, "GET", "/fl/datasets");
      if (args.json) return printJson(r);
      process.stdout.write(`${r.count} dataset(s)${r.count ? `: ${r.clients.join(", ")}` : ""}\n`);
    }),
});

export const flCommand = defineCommand({
  meta: { name: "fl", description: "Federated learning: experiments, rounds, updates, models and datasets" },
  subCommands: {
    configure,
    status,
    stop: defineCommand({
      meta: { description: "Stop a running experiment: its open round ends stopped, its tasks are stopped" },
      args: { id: { type: "positional", description: "the experiment id", required: true }, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const id = await resolveId(args, "experiment", args.id);
          const r = await api<{ experiment_id: string; state: string }>(
            args,
            "POST",
            `/fl/experiments/${encodeURIComponent(id)}/stop`,
          );
          if (args.json) return printJson(r);
          process.stdout.write(`experiment ${r.experiment_id}: ${r.state}\n`);
        }),
    }),
    models,
    datasets,
    task: defineCommand({
      meta: { description: "What a round's client is to do (GET /fl/task)" },
      args: {
        "round-id": { type: "string", description: "the round (required)" },
        "proplet-id": { type: "string", description: "the proplet asking" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          if (!args["round-id"]) throw new UsageError("round id is required");
          const q = new URLSearchParams({ round_id: args["round-id"] });
          if (args["proplet-id"]) q.set("proplet_id", args["proplet-id"]);
          printJson((await api<{ task: unknown }>(args, "GET", `/fl/task?${q}`)).task);
        }),
    }),
    update: defineCommand({
      meta: { description: "Send a round's update (POST /fl/update)" },
      args: {
        "round-id": { type: "string", description: "the round (required)" },
        "proplet-id": { type: "string", description: "the participant it is from" },
        "base-model-uri": { type: "string", description: "the model it was trained from" },
        "num-samples": { type: "string", description: "the samples it was trained on (its FedAvg weight)" },
        update: { type: "string", description: 'the tensors as a JSON object, e.g. \'{"w":[1,2],"b":0.5}\'' },
        metrics: { type: "string", description: "the client's metrics as a JSON object" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          if (!args["round-id"]) throw new UsageError("round id is required");
          await api(args, "POST", "/fl/update", {
            round_id: args["round-id"],
            proplet_id: args["proplet-id"] ?? "",
            base_model_uri: args["base-model-uri"] ?? "",
            num_samples: args["num-samples"] ? int("num-samples", args["num-samples"], 0, 1e12) : 0,
            metrics: jsonFlag("metrics", args.metrics),
            update: jsonFlag("update", args.update),
            received_at: "0001-01-01T00:00:00Z",
          });
          process.stdout.write("ok\n");
        }),
    }),
    "update-cbor": defineCommand({
      meta: { description: "Send a round's update from a CBOR file (POST /fl/update_cbor)" },
      args: { file: { type: "positional", description: "a CBOR file", required: true }, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          await api(args, "POST", "/fl/update_cbor", new Uint8Array(readUserFile(args.file)));
          process.stdout.write("ok\n");
        }),
    }),
    "round-status": defineCommand({
      meta: { description: "Whether a round is complete (GET /fl/rounds/{id}/complete)" },
      args: { id: { type: "positional", description: "the round id", required: true }, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          printJson(
            (await api<{ status: unknown }>(args, "GET", `/fl/rounds/${encodeURIComponent(args.id)}/complete`)).status,
          );
        }),
    }),
  },
});
