import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { b64, FIXTURES, http, ROOT, runTask, type Serve, startServe, until } from "../helpers.ts";

// What a task is and doing it again (issue 28, items 3, 5, 9 and 10), in Debian's chromium against a real serve
// and its local proplet: a scheduled task's page shows its requirements, limits, retries, schedule, next run, time
// zone and missed-run policy, and pauses and resumes; "Re-run with edits" opens the form prefilled and makes a copy
// that runs with the edits (its module kept); the create form lists a chosen module's exports and says when the
// name given is none of them; a workflow shows its given name; its graph zooms by buttons and keys at phone width;
// a running task's chart moves with its live samples; the overview's rates have a table; axe-core stays clean.

const AXE = join(ROOT, "node_modules", "axe-core", "axe.min.js");
let s: Serve;
let browser: Browser;
let cronId = "";
let addId = "";
let workflowId = "";
const errors: string[] = [];

async function open(width = 1280, scheme: "light" | "dark" = "light"): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme: scheme });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  const res = await context.request.post(`${s.url}/session`, { data: { token: s.token } });
  expect(res.status()).toBe(200);
  return page;
}

async function axe(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: AXE });
  const found = (await page.evaluate(
    "axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations)",
  )) as { id: string; impact?: string; help: string; nodes: { target: string[] }[] }[];
  return found
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

beforeAll(async () => {
  s = await startServe();
  const cron = await http(`${s.url}/tasks`, "POST", {
    name: "add",
    file: b64("add"),
    inputs: [1, 2],
    schedule: "0 3 * * *",
    timezone: "Asia/Tokyo",
    misfire_policy: "run_once",
    timeout_s: 30,
    max_retries: 2,
    retry_backoff_s: 5,
    requirements: { labels: { zone: "lab" }, arch: "x86_64" },
  });
  expect(cron.status).toBe(201);
  cronId = cron.body.id;
  addId = (await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3], env: { MODE: "a" } })).id;
  const w = await http(`${s.url}/workflows`, "POST", {
    name: "nightly etl",
    tasks: [
      { id: "extract", name: "add", file: b64("add"), inputs: [1, 1] },
      { id: "load", name: "add", file: b64("add"), inputs: [1, 2], depends_on: ["extract"] },
      { id: "report", name: "add", file: b64("add"), inputs: [1, 3], depends_on: ["load"] },
    ],
  });
  expect(w.status).toBe(201);
  workflowId = w.body.workflow_id;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await s?.kill();
});

describe("what a task is, and doing it again", () => {
  test("a scheduled task's page: requirements, limits, schedule and next run; pause and resume", async () => {
    const page = await open();
    await page.goto(`${s.url}/#/tasks/${cronId}`);
    const text = (id: string) => page.getByTestId(id).textContent();
    await page.getByTestId("task-requirements").waitFor();
    expect(await text("task-requirements")).toBe("zone=lab, arch x86_64");
    expect(await text("task-timeout")).toBe("30 s");
    expect(await text("task-retries")).toBe("up to 2, the first after 5 s, doubling (at most 300 s)");
    expect(await text("task-schedule")).toBe("0 3 * * *");
    expect(await text("task-timezone")).toBe("Asia/Tokyo");
    expect(await text("task-misfire")).toContain("run_once");
    // The next run, in Tokyo's words: 03:00 there.
    expect(await text("task-next-run")).toMatch(/3:00:00 AM Asia\/Tokyo|03:00:00 Asia\/Tokyo/);
    await page.getByRole("button", { name: "Pause schedule" }).click();
    await page.getByRole("button", { name: "Resume schedule" }).waitFor();
    expect((await http(`${s.url}/tasks/${cronId}`)).body.paused).toBe(true);
    expect(await text("task-next-run")).toBe("paused");
    await page.getByRole("button", { name: "Resume schedule" }).click();
    await page.getByRole("button", { name: "Pause schedule" }).waitFor();
    expect((await http(`${s.url}/tasks/${cronId}`)).body.paused).toBe(false);
    // The list says it is a cron task too.
    await page.goto(`${s.url}/#/tasks`);
    await page.getByText("cron 0 3 * * * Asia/Tokyo").waitFor();
    await page.context().close();
  }, 30_000);

  test("re-run with edits: the form is prefilled, the copy runs with the new inputs and the old module", async () => {
    const page = await open();
    await page.goto(`${s.url}/#/tasks/${addId}`);
    await page.getByRole("button", { name: "Re-run with edits…" }).click();
    const form = page.getByRole("form", { name: "Re-run add with edits" });
    expect(await form.locator("input[name=inputs]").inputValue()).toBe("2,3");
    expect(await form.locator("textarea[name=env]").inputValue()).toBe("MODE=a");
    await form.locator("input[name=inputs]").fill("20,22");
    // Another name: the function it calls is said apart (cli_args --invoke=add, as `tasks create --function`).
    await form.locator("input[name=name]").fill("answer");
    await form.locator("input[name=invoke]").fill("add");
    await form.locator("textarea[name=env]").fill("");
    await form.locator("input[name=retries]").fill("1");
    await form.getByRole("button", { name: "Create the copy" }).click();
    await page.waitForURL((u) => /#\/tasks\//.test(u.hash) && !u.hash.includes(addId));
    const copyId = decodeURIComponent(new URL(page.url()).hash.split("/")[2]!);
    await until("the copy to complete", async () => (await http(`${s.url}/tasks/${copyId}`)).body.state === 3);
    const copy = (await http(`${s.url}/tasks/${copyId}`)).body;
    expect(copy).toMatchObject({
      name: "answer",
      cli_args: ["--invoke=add"],
      inputs: ["20", "22"],
      max_retries: 1,
      results: "42",
    });
    for (const k of ["env", "metadata", "requirements", "schedule"]) expect(copy[k]).toBeUndefined();
    await page.getByTestId("task-result").getByText("42").waitFor();
    expect(await page.getByTestId("task-function").textContent()).toBe("add");
    // Clone: a copy as it is, not started.
    await page.getByRole("button", { name: "Clone" }).click();
    await page.waitForURL((u) => !u.hash.includes(copyId));
    await page.getByTestId("task-state").getByText("Pending").waitFor();
    await page.context().close();
  }, 30_000);

  test("the create form offers a module's exports and says when the name is none of them", async () => {
    const page = await open();
    await page.goto(`${s.url}/#/tasks`);
    const form = page.getByRole("form", { name: "Create a task" });
    await form.locator("input[name=file]").setInputFiles(join(FIXTURES, "add.wasm"));
    const hint = form.getByTestId("export-hint");
    await hint.getByText("add(i32, i32) → i32").waitFor();
    expect(await form.locator("datalist option").evaluateAll((o) => o.map((x) => x.getAttribute("value")))).toEqual([
      "add",
    ]);
    await form.locator("input[name=name]").fill("sum");
    await hint.getByText(/It cannot run: no export to run: tried sum, main, run, _start/).waitFor();
    await form.locator("input[name=invoke]").fill("add");
    await hint.getByText("It will call add (the function chosen).").waitFor();
    await form.locator("input[name=invoke]").fill("");
    // A module with main: a name that is no export calls main, and the form says so.
    await form.locator("input[name=file]").setInputFiles(join(FIXTURES, "main-only.wasm"));
    await form.locator("input[name=name]").fill("anything");
    await hint.getByText("It will call main (anything is not an export).").waitFor();
    // Timeout, retries, requirements and metadata are sent as given.
    await form.locator("input[name=file]").setInputFiles(join(FIXTURES, "add.wasm"));
    await form.locator("input[name=name]").fill("sum of two");
    await form.locator("input[name=invoke]").fill("add");
    await form.locator("input[name=inputs]").fill("4,5");
    await form.locator("input[name=timeout]").fill("10");
    await form.locator("input[name=retries]").fill("3");
    await form.locator("textarea[name=requirements]").fill("gpu=true\nmin_memory_mb=64");
    await form.locator("textarea[name=metadata]").fill('{"team": "edge"}');
    await form.getByRole("button", { name: "Create task" }).click();
    await page.waitForURL(/#\/tasks\/[0-9a-f-]{36}$/);
    const id = decodeURIComponent(new URL(page.url()).hash.split("/")[2]!);
    expect((await http(`${s.url}/tasks/${id}`)).body).toMatchObject({
      name: "sum of two",
      cli_args: ["--invoke=add"],
      timeout_s: 10,
      max_retries: 3,
      requirements: { labels: { gpu: "true" }, min_memory_mb: 64 },
      metadata: { team: "edge" },
    });
    // No proplet has gpu=true: the page says why it waits.
    await page.getByTestId("task-waiting").waitFor();
    await page.context().close();
  }, 30_000);
});

describe("workflows by name, the graph's zoom, live charts", () => {
  test("a workflow is listed and headed by its given name; a task's page names its workflow and its job", async () => {
    const job = await http(`${s.url}/jobs`, "POST", { name: "quick job", tasks: [{ name: "add", file: b64("add") }] });
    expect(job.status).toBe(201);
    const page = await open();
    await page.goto(`${s.url}/#/tasks/${job.body.tasks[0].id}`);
    await page.getByRole("link", { name: /^quick job / }).waitFor();
    await page.goto(`${s.url}/#/tasks/extract`);
    await page.getByRole("link", { name: "nightly etl" }).waitFor();
    // The task list says which workflow a task is in, by its name.
    await page.goto(`${s.url}/#/tasks`);
    await page.getByRole("table").getByRole("link", { name: "nightly etl" }).first().waitFor();
    await page.goto(`${s.url}/#/workflows`);
    await page.getByRole("link", { name: "nightly etl" }).click();
    await page.getByRole("heading", { name: "Workflow nightly etl" }).waitFor();
    expect(await page.title()).toBe("Workflow nightly etl · Propeller");
    await page.context().close();
  });

  test("at 390 px the graph zooms by buttons and by keys on a node, scrolling in its box, never the page", async () => {
    const page = await open(390);
    await page.goto(`${s.url}/#/workflows/${workflowId}`);
    const svg = page.locator("svg.dag");
    await svg.waitFor();
    const width = () => svg.evaluate((e) => e.getBoundingClientRect().width);
    const at100 = await width();
    await page.getByRole("button", { name: "Zoom the graph in" }).click();
    expect(await page.getByTestId("dag-zoom").textContent()).toBe("125%");
    expect(Math.abs((await width()) - at100 * 1.25)).toBeLessThan(2);
    await page.getByRole("link", { name: "extract Pending" }).focus();
    await page.keyboard.press("-");
    await page.keyboard.press("-");
    expect(await page.getByTestId("dag-zoom").textContent()).toBe("75%");
    await page.keyboard.press("0");
    expect(Math.abs((await width()) - at100)).toBeLessThan(2);
    await page.keyboard.press("+");
    await page.keyboard.press("+");
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBe(390);
    expect(await axe(page)).toEqual([]);
    await page.context().close();
  }, 30_000);

  test("a running task's chart moves with its live samples", async () => {
    const r = await http(`${s.url}/tasks`, "POST", {
      name: "spin",
      file: b64("spin"),
      timeout_s: 20,
      monitoring_profile: { enabled: true, interval: 1 },
    });
    const id = r.body.id as string;
    const page = await open();
    await page.goto(`${s.url}/#/tasks/${id}`);
    const count = async () => Number((await page.getByTestId("task-sample-count").textContent())?.split(" ")[0]);
    await page.getByTestId("task-sample-count").getByText("sampled every 1 s while it runs").waitFor();
    expect(await count()).toBe(0);
    await http(`${s.url}/tasks/${id}/start`, "POST");
    // No reload: the samples come from the live stream of this task's metrics events.
    await until("three samples on the page", async () => (await count()) >= 3, 15_000);
    const canvases = await page.locator(".chart canvas").count();
    expect(canvases).toBeGreaterThan(0);
    await http(`${s.url}/tasks/${id}/stop`, "POST");
    await page.context().close();
  }, 30_000);

  test("the overview's rates have a table; axe-core finds nothing serious on the new states in either theme", async () => {
    for (const scheme of ["light", "dark"] as const) {
      const page = await open(1280, scheme);
      await page.goto(`${s.url}/#/`);
      const summary = page.locator(".chart-table summary", { hasText: "Rates as a table" });
      await summary.waitFor({ timeout: 15_000 });
      await summary.click();
      const table = page.locator(".chart-table table").first();
      expect(await table.locator("th").allTextContents()).toContain("runs failed/s");
      expect(await table.locator("tbody tr").count()).toBeGreaterThan(0);
      const found = (await axe(page)).map((v) => `overview: ${v}`);
      await page.goto(`${s.url}/#/tasks/${cronId}`);
      await page.getByRole("button", { name: "Re-run with edits…" }).click();
      const form = page.getByRole("form", { name: "Re-run add with edits" });
      // Prefilled from the scheduled task, its select too.
      expect(await form.locator("select[name=misfire]").inputValue()).toBe("run_once");
      expect(await form.locator("textarea[name=requirements]").inputValue()).toBe("zone=lab\narch=x86_64");
      found.push(...(await axe(page)).map((v) => `task with the edit form: ${v}`));
      await page.goto(`${s.url}/#/tasks`);
      await page
        .getByRole("form", { name: "Create a task" })
        .locator("input[name=file]")
        .setInputFiles(join(FIXTURES, "add.wasm"));
      await page.getByTestId("export-hint").waitFor();
      found.push(...(await axe(page)).map((v) => `create form with exports: ${v}`));
      expect(found.join("\n")).toBe("");
      await page.context().close();
    }
    expect(errors).toEqual([]);
  }, 60_000);
});

describe("a button's error", () => {
  test("goes once another button's change succeeded: a failed Start's error did not outlive the page's next change", async () => {
    const bare = await http<{ id: string }>(`${s.url}/tasks`, "POST", { name: "nothing-to-run" });
    const page = await open();
    await page.goto(`${s.url}/#/tasks/${bare.body.id}`);
    await page.getByRole("button", { name: "Start" }).click();
    const said = page.getByRole("alert").getByText("has no module");
    await said.waitFor();
    await page.getByRole("button", { name: "Re-run with edits…" }).click();
    await page.getByRole("button", { name: "Close the edits" }).waitFor();
    await said.waitFor({ state: "detached" });
    await page.context().close();
  }, 30_000);
});
