import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { b64, FIXTURES, http, runTask, type Serve, startServe, until } from "../helpers.ts";

// The console live, in a real browser (Debian's chromium) against a real serve whose local proplet sends metrics
// every second: the overview shows what happened before it opened and keeps it while navigating, its rates come
// from the manager's counters and link to filtered lists, a proplet's chart moves as metrics events arrive, and
// relative times move on by themselves.

let s: Serve;
let browser: Browser;
const errors: string[] = [];

async function open(width = 1280): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  const res = await context.request.post(`${s.url}/session`, { data: { token: s.token } });
  expect(res.status()).toBe(200);
  await page.goto(s.url);
  await page.getByRole("navigation", { name: "Pages" }).waitFor();
  return page;
}

beforeAll(async () => {
  s = await startServe({ env: { PROPLET_METRICS_INTERVAL: "1" } });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
  await s?.kill();
});

describe("the console, live", () => {
  test("the overview shows the events from before it opened, keeps them while navigating; its times tick", async () => {
    // Happened before any browser was open (a task's name is the export it calls).
    const done = await runTask(s.url, { name: "add", file: b64("add"), inputs: [1, 2] });
    expect(done.status).toBe("Completed");
    const page = await open();
    const events = page.getByRole("list", { name: "Recent events" });
    const line = events.getByText("task add → Completed");
    await line.waitFor({ timeout: 5000 });
    // Ids as names: the run's task by its name, the proplet by its given name.
    const proplet = (await http(`${s.url}/proplets`)).body.proplets[0];
    await events.getByText(`run of add ended Completed on ${proplet.name}`).waitFor();
    // Navigating away and back keeps them.
    await page.getByRole("link", { name: "Proplets", exact: true }).click();
    await page.getByRole("heading", { name: "Proplets", exact: true }).waitFor();
    await page.goto(`${s.url}/#/`);
    await line.waitFor();
    // Its age moves on with no new event and no reload: a later reading is larger.
    const age = events.locator("li", { hasText: "task add → Completed" }).first().locator("span.muted");
    const seconds = async () => Number(/(\d+) s ago/.exec((await age.textContent()) ?? "")?.[1] ?? 0);
    const first = await until("an age in seconds", async () => (await seconds()) || undefined, 10_000);
    await until("the age to tick", async () => (await seconds()) > first, 12_000);
    await page.context().close();
  });

  test("rates from the manager's counters, each linking to its filtered list", async () => {
    const page = await open();
    for (let i = 0; i < 3; i++) await runTask(s.url, { name: "add", file: b64("add"), inputs: [i, 1] });
    // Two samples (5 s apart) make the first rate.
    const rates = page.getByTestId("rates");
    await rates.waitFor({ timeout: 15_000 });
    const api = (await http(`${s.url}/stats/rates`)).body;
    expect(api.interval_s).toBe(5);
    expect(api.samples.length).toBeGreaterThan(0);
    await page.getByTestId("rate-mqtt_messages_per_s").getByText(/\/s$/).waitFor();
    // Runs completed: some interval saw the three runs (each sample is kept, so the history shows it).
    await until(
      "the completions in a sample",
      async () => (await http(`${s.url}/stats/rates`)).body.samples.some((x: any) => x.completed_per_s > 0),
      15_000,
    );
    await page.getByRole("link", { name: /runs failed/ }).click();
    await page.getByRole("heading", { name: "Tasks", exact: true }).waitFor();
    // The counters count every task, FL rounds included: so does the list they lead to ("13 completed" led to 10).
    const shownRounds = page.getByRole("checkbox", { name: /FL round/ });
    await until("the list to include FL rounds", async () => await shownRounds.isChecked());
    // The select shows the state the link asked for (read until it settles: the page may still be rendering).
    let shown = "";
    await until("the State filter to show Failed", async () => {
      shown = await page.getByLabel("State").inputValue();
      return shown === "Failed";
    }).catch((e) => {
      throw new Error(`${e.message}; it showed "${shown}" at ${page.url()}`);
    });
    await page.context().close();
  });

  test("tabs out of sight let their streams go: a seventh tab loads (a host gets six connections), and a tab shown again is live", async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    expect((await context.request.post(`${s.url}/session`, { data: { token: s.token } })).status()).toBe(200);
    // As the browser says a tab went out of sight or came back (headless, every tab counts as shown).
    const seen = (p: Page, hidden: boolean) =>
      p.evaluate(
        `Object.defineProperty(document, "hidden", { configurable: true, get: () => ${hidden} });
         document.dispatchEvent(new Event("visibilitychange"));`,
      );
    const tabs: Page[] = [];
    for (let i = 0; i < 6; i++) {
      const p = await context.newPage();
      await p.goto(`${s.url}/#/`);
      await p.getByRole("list", { name: "Recent events" }).waitFor();
      await seen(p, true);
      tabs.push(p);
    }
    await Bun.sleep(5_000 + 1_500); // PARK_AFTER_MS (web/live.ts), and a little
    const seventh = await context.newPage();
    await seventh.goto(`${s.url}/#/`, { timeout: 10_000 });
    await seventh.getByRole("navigation", { name: "Pages" }).waitFor({ timeout: 10_000 });
    // The first tab shown again takes its stream back: a task run now appears in its list without a reload.
    await seen(tabs[0]!, false);
    await Bun.sleep(500);
    const done = tabs[0]!.getByRole("list", { name: "Recent events" }).getByText("task add → Completed");
    const before = await done.count();
    const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [40, 2] });
    expect(t.results).toBe("42");
    await until("the run in the tab shown again", async () => (await done.count()) > before, 10_000);
    await context.close();
  }, 60_000);

  test("a proplet's chart moves as its metrics events arrive, without a reload; its heartbeat age follows", async () => {
    const proplet = (await http(`${s.url}/proplets`)).body.proplets[0];
    const page = await open();
    // The page's one fetch of the samples is awaited before counting: the count is shown before it is answered.
    const loaded = page.waitForResponse((r) => r.url().includes("/metrics?"));
    await page.goto(`${s.url}/#/proplets/${proplet.id}`);
    const count = async () => Number(/^(\d+)/.exec((await page.getByTestId("sample-count").textContent()) ?? "")?.[1]);
    const fetched = ((await (await loaded).json()) as { metrics: unknown[] }).metrics.length;
    await until("the fetched samples shown", async () => (await count()) >= fetched, 10_000);
    const before = await count();
    // No reload and no refetch of the samples: only the stream adds them.
    let refetched = 0;
    page.on("request", (r) => {
      if (r.url().includes("/metrics?")) refetched++;
    });
    await until("samples from the live stream", async () => (await count()) >= before + 2, 10_000);
    expect(refetched).toBe(0);
    await page.locator(".chart canvas").first().waitFor();
    // The proplet's state and its last heartbeat, as the server sees them now.
    await page.getByText("alive", { exact: true }).waitFor();
    await page
      .getByTestId("last-heartbeat")
      .getByText(/just now|\d+ s ago/)
      .waitFor();
    await page.context().close();
    expect(errors).toEqual([]);
  });

  test("FL: an experiment started from the form; rounds on a numeric axis, loss and accuracy apart, updates per participant, the model to download", async () => {
    const proplet = (await http(`${s.url}/proplets`)).body.proplets[0];
    const page = await open();
    await page.getByRole("link", { name: "Federated learning" }).click();
    await page.getByText("Start an experiment", { exact: true }).click();
    const form = page.getByRole("form", { name: "Start an experiment" });
    await form.getByLabel("Experiment id").fill("from-the-ui");
    await form.getByLabel(proplet.name).check();
    await form.getByLabel("Rounds").fill("2");
    await form.getByLabel("Round timeout (s)").fill("30");
    // A mistake is named: no module.
    await form.getByRole("button", { name: "Start experiment" }).click();
    await page.getByRole("alert").getByText("give the round's module").waitFor();
    await form.getByLabel("Round module (.wasm)").setInputFiles(join(FIXTURES, "spin.wasm"));
    await form.getByRole("button", { name: "Start experiment" }).click();
    await page.getByRole("heading", { name: "Experiment from-the-ui" }).waitFor();
    expect(page.url()).toEndWith("#/fl/from-the-ui");

    // Each round's update, as the participant sends it (the round's task spins until the round closes).
    for (const [i, loss, accuracy, n] of [
      [0, 0.9, 0.6, 10],
      [1, 0.4, 0.85, 12],
    ] as const) {
      const round = await until(`round ${i + 1}`, async () => {
        const e = (await http(`${s.url}/fl/experiments/from-the-ui`)).body;
        return e.round_list[i]?.state === "running" && e.round_list[i].round_id;
      });
      const r = await http(`${s.url}/fl/update`, "POST", {
        round_id: round,
        proplet_id: proplet.id,
        num_samples: n,
        metrics: { loss, accuracy },
        update: { w: [i, i, i], b: i },
      });
      expect(r.status).toBe(200);
    }
    await until("the experiment to complete", async () => {
      const e = (await http(`${s.url}/fl/experiments/from-the-ui`)).body;
      if (e.state !== "running" && e.state !== "completed") throw new Error(JSON.stringify(e));
      return e.state === "completed";
    });
    await page.getByText(/^completed · fedavg/).waitFor({ timeout: 10_000 });
    // Rounds as numbers on the axis, never times; loss and accuracy each on a chart of its own.
    const axis = page.getByTestId("round-axis").first();
    const labels = (await axis.locator("text").allTextContents()).filter((t) => t !== "round");
    expect(labels).toEqual(["1", "2"]);
    expect(await page.getByRole("img", { name: "Loss, by round" }).count()).toBe(1);
    expect(await page.getByRole("img", { name: "Accuracy, by round" }).count()).toBe(1);
    // The accuracy axis spans the accuracies (0.6 to 0.85), not the loss's range.
    const accTicks = await page
      .getByRole("img", { name: "Accuracy, by round" })
      .locator("g.axis")
      .nth(1)
      .locator("text")
      .allTextContents();
    expect(accTicks.map(Number).every((v) => v >= 0.6 && v <= 0.85)).toBe(true);
    // Per participant: samples and metrics per round; durations; the new model to download.
    await page.getByRole("cell", { name: "12 samples · loss 0.400, accuracy 0.850" }).waitFor();
    await page
      .getByRole("cell", { name: /^\d+(\.\d)? s$/ })
      .first()
      .waitFor();
    const download = page.getByRole("link", { name: "Download model v2" });
    const href = await download.getAttribute("href");
    expect(href).toBe("/fl/models/2");
    const model = await page.evaluate(async (h) => (await fetch(h!)).json(), href);
    expect(model).toEqual({ w: [1, 1, 1], b: 1 });
    await page.context().close();
    expect(errors).toEqual([]);
  });
});
