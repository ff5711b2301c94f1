import { afterAll, beforeAll, expect, test } from "bun:test";
import { b64, http, type Serve, startServe, until } from "../helpers.ts";

// The FL example's client (examples/fl-mnist/client.c, built as the fl-client fixture) reports the loss and
// accuracy of the model it returns, on its own data. Checked outside the guest: the same data and the returned
// weights give the same accuracy here. Before the fix it compared an exponentiated z[best] with a raw logit and
// reported a wrong accuracy (issue 28, item 6).

let s: Serve;
beforeAll(async () => {
  s = await startServe();
});
afterAll(async () => {
  await s?.kill();
});

const F = 4;
const C = 3;

/** A small dataset that a linear model learns well but not perfectly (a tenth of the labels flipped). */
function dataset(n: number): { x: number[]; y: number }[] {
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const truth = [
    [2, -1, 0.5, 0],
    [-1, 2, 0, 0.5],
    [0, 0, 1, -2],
  ];
  return Array.from({ length: n }, () => {
    const x = Array.from({ length: F }, () => Math.round(rnd() * 100) / 100);
    let y = 0;
    for (let c = 1; c < C; c++) {
      const score = (k: number) => truth[k]!.reduce((a, w, f) => a + w * x[f]!, 0);
      if (score(c) > score(y)) y = c;
    }
    if (rnd() < 0.1) y = (y + 1) % C;
    return { x, y };
  });
}

/** Accuracy and mean cross-entropy of a model {w: C×F, b: C} on samples, computed here, not in the guest. */
function evaluate(model: { w: number[]; b: number[] }, data: { x: number[]; y: number }[]) {
  let right = 0;
  let loss = 0;
  for (const s of data) {
    const z = Array.from(
      { length: C },
      (_, c) => model.b[c]! + s.x.reduce((a, v, f) => a + model.w[c * F + f]! * v, 0),
    );
    const best = z.indexOf(Math.max(...z));
    if (best === s.y) right++;
    const max = Math.max(...z);
    const sum = z.reduce((a, v) => a + Math.exp(v - max), 0);
    loss += -Math.log(Math.exp(z[s.y]! - max) / sum + 1e-12);
  }
  return { accuracy: right / data.length, loss: loss / data.length };
}

test("the client's reported accuracy and loss are those of its returned model on its data, computed outside the guest", async () => {
  const data = dataset(300);
  const zero = { w: Array(C * F).fill(0), b: Array(C).fill(0) };
  // One round on serve's local proplet, as an experiment runs it: its dataset and model v0 from the FL services.
  const local = (await http(`${s.url}/proplets`)).body.proplets[0].id as string;
  expect((await http(`${s.url}/fl/models`, "POST", { version: 0, model: zero })).status).toBeLessThan(300);
  expect((await http(`${s.url}/fl/datasets/${local}`, "POST", { data })).status).toBe(201);
  const configured = await http(`${s.url}/fl/experiments`, "POST", {
    experiment_id: "accuracy",
    round_id: "acc-1",
    participants: [local],
    hyperparams: { epochs: 3, lr: 0.5, batch_size: 16 },
    k_of_n: 1,
    min_participants: 1,
    timeout_s: 30,
    task_file: b64("fl-client"),
  });
  expect(configured.status).toBe(200);
  const round = await until("the round to complete", async () => {
    const e = (await http(`${s.url}/fl/experiments/accuracy`)).body;
    return e.round_list[0]?.state === "completed" && e.round_list[0];
  });
  // The update may close the round (over HTTP, from the FL URL) before the task's own result is in (over MQTT).
  const results = await until("the round task's result", async () => {
    const r = (await http(`${s.url}/tasks/${round.tasks[local]}/results`)).body.results;
    return r ?? undefined;
  });
  // The round task's result is upstream's FL envelope: the client's stdout in `update_b64`.
  const envelope = typeof results === "string" ? JSON.parse(results) : results;
  const out = JSON.parse(Buffer.from(envelope.update_b64, "base64").toString("utf8"));
  expect(out.num_samples).toBe(data.length);
  const here = evaluate(out.update, data);
  console.log(
    `client reported accuracy ${out.metrics.accuracy}, loss ${out.metrics.loss}; here ${here.accuracy}, ${here.loss}`,
  );
  // A learnable set: the model is far better than chance and not perfect (a tenth of the labels flipped).
  expect(here.accuracy).toBeGreaterThan(0.6);
  expect(here.accuracy).toBeLessThan(1);
  // The weights come back with 6 significant digits: at most one sample on a boundary may fall the other way.
  expect(Math.abs(out.metrics.accuracy - here.accuracy)).toBeLessThanOrEqual(1 / data.length);
  expect(out.metrics.loss).toBeCloseTo(here.loss, 3);
  // The round shows what its one client reported.
  expect(round.metrics.accuracy).toBeCloseTo(out.metrics.accuracy, 6);
}, 30_000);
