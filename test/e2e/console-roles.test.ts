import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { b64, http, runTask, type Serve, startServe } from "../helpers.ts";

// Controls that follow state and role, empty lists and outages (issue 28, items 7 and 10), in Debian's chromium
// against a real serve with its local proplet: a viewer's console has no write control at all and says so once;
// a finished task's Stop is disabled (and its Start not); a completed job offers no "Stop job"; revoking the token
// the console is signed in with needs its name typed; an empty Jobs or Workflows page shows a file of the format;
// and with serve gone a task page keeps its details and Runs, marked stale.

let s: Serve;
let browser: Browser;
const errors: string[] = [];

async function open(token: string, watch = true, width = 1280): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  if (watch) {
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  }
  const res = await context.request.post(`${s.url}/session`, { data: { token } });
  expect(res.status()).toBe(200);
  await page.goto(s.url);
  await page.getByRole("navigation", { name: "Pages" }).waitFor();
  return page;
}

let doneId = "";

beforeAll(async () => {
  s = await startServe();
  doneId = (await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3] })).id;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await s?.kill();
});

describe("controls follow state and role", () => {
  test("an empty Jobs page and Workflows page show a minimal JSON and YAML file", async () => {
    const page = await open(s.token!);
    await page.goto(`${s.url}/#/jobs`);
    const jobs = page.getByTestId("empty-example");
    await jobs.getByText("No jobs yet").waitFor();
    expect(await jobs.locator("pre").count()).toBe(2);
    const [json, yaml] = await jobs.locator("pre").allTextContents();
    // The example is a file the manager takes as it is.
    expect(JSON.parse(json!).execution_mode).toBe("sequential");
    expect(yaml).toContain("execution_mode: sequential");
    await page.goto(`${s.url}/#/workflows`);
    await page.getByTestId("empty-example").getByText("No workflows yet").waitFor();
    expect(
      JSON.parse((await page.getByTestId("empty-example").locator("pre").first().textContent())!).tasks[1].depends_on,
    ).toEqual(["extract"]);
    await page.context().close();
  });

  test("a finished task: Stop disabled saying why, Start and Delete enabled; a completed job has no Stop job", async () => {
    const page = await open(s.token!);
    await page.goto(`${s.url}/#/tasks/${doneId}`);
    await page.getByTestId("task-state").getByText("Completed").waitFor();
    const stop = page.getByRole("button", { name: "Stop", exact: true });
    expect(await stop.isDisabled()).toBe(true);
    expect(await stop.getAttribute("title")).toContain("not running");
    // Said on the page too (a touch screen shows no tooltip), and tied to the button for a screen reader.
    const why = await stop.getAttribute("aria-describedby");
    expect(await page.locator(`[id="${why}"]`).textContent()).toContain("the task is not running (Completed)");
    expect(await page.getByRole("button", { name: "Start", exact: true }).isEnabled()).toBe(true);
    expect(await page.getByRole("button", { name: "Delete", exact: true }).isEnabled()).toBe(true);
    // A job that completed: listed, with nothing to stop.
    const job = await http(`${s.url}/jobs`, "POST", {
      name: "quick",
      tasks: [{ name: "add", file: b64("add"), inputs: [1, 1] }],
    });
    expect(job.status).toBe(201);
    await http(`${s.url}/jobs/${job.body.job_id}/start`, "POST");
    await page.goto(`${s.url}/#/jobs`);
    const row = page.getByRole("row").filter({ hasText: "quick" });
    await row.getByText("Completed").first().waitFor({ timeout: 15_000 });
    expect(await page.getByRole("button", { name: /^Stop job/ }).count()).toBe(0);
    // Its own page (#/jobs/{id} showed the list of all jobs), reached from its task's page too.
    const taskId = (await http(`${s.url}/jobs/${job.body.job_id}`)).body.tasks[0].id;
    await page.goto(`${s.url}/#/tasks/${taskId}`);
    await page.getByRole("link", { name: /quick/ }).click();
    await page.getByRole("heading", { name: "Job quick" }).waitFor();
    await page.getByText(`id ${job.body.job_id}`).waitFor();
    expect(await page.getByRole("button", { name: /^Stop job/ }).count()).toBe(0);
    await page.context().close();
  });

  test("a viewer's console is read-only: no create form, no action button, one line saying so", async () => {
    const viewer = await http(`${s.url}/tokens`, "POST", { name: "onlooker", role: "viewer" });
    const page = await open(viewer.body.token);
    for (const hash of ["#/tasks", `#/tasks/${doneId}`, "#/jobs", "#/workflows", "#/fl", "#/access"]) {
      await page.goto(`${s.url}/${hash}`);
      await page.locator("main h1").waitFor();
      await page.waitForTimeout(200);
      expect(await page.getByTestId("read-only").count()).toBe(1);
      expect(await page.getByTestId("read-only").textContent()).toContain("a viewer token may look, not change");
      // Nothing to fill or press that would change anything (Sign out and finding controls excepted).
      const writes = await page
        .locator("main")
        .getByRole("button")
        .filter({ hasText: /^(Create|Start|Stop|Delete|Revoke|Pause|Resume|Clone)\b/ })
        .count();
      expect(`${hash}: ${writes}`).toBe(`${hash}: 0`);
      expect(await page.locator('main input[type="file"]').count()).toBe(0);
      expect(await page.getByRole("form", { name: /Create/ }).count()).toBe(0);
    }
    await page.context().close();
  });

  test("revoking the token in use needs its name typed; another token only a confirm", async () => {
    const t = await http(`${s.url}/tokens`, "POST", { name: "ops-admin", role: "admin" });
    // A token past its lifetime says so (a past date alone read as in force).
    expect((await http(`${s.url}/tokens`, "POST", { name: "brief", role: "viewer", ttl: "1s" })).status).toBe(201);
    await Bun.sleep(1100);
    const page = await open(t.body.token, false); // the calls after the revocation are 401s, logged by the browser
    await page.goto(`${s.url}/#/access`);
    await page
      .getByRole("row", { name: /brief/ })
      .getByText(/^expired /)
      .waitFor();
    // Making a token here asks for an admin token again: the session's cookie reaches every port of this host.
    await page.getByLabel("Name", { exact: true }).first().fill("made-here");
    await page.getByRole("button", { name: "Create token" }).click();
    await page.getByText("making a token from the console asks for an admin token again").waitFor();
    await page.getByLabel(/Your admin token, again/).fill(t.body.token);
    await page.getByRole("button", { name: "Create token" }).click();
    await page.getByRole("status").getByText("Shown once, copy it now").waitFor();
    await page.getByRole("button", { name: "Revoke token ops-admin (in use)…" }).click();
    const revoke = page.getByRole("button", { name: "Revoke token ops-admin", exact: true });
    expect(await revoke.isDisabled()).toBe(true);
    await page.getByLabel(/type ops-admin to revoke/).fill("ops-admi");
    expect(await revoke.isDisabled()).toBe(true);
    await page.getByLabel(/type ops-admin to revoke/).fill("ops-admin");
    expect(await revoke.isEnabled()).toBe(true);
    // The admin token, not in use here, goes by a confirm as before (not pressed).
    expect(await page.getByRole("button", { name: "Revoke token admin", exact: true }).count()).toBe(1);
    await revoke.click();
    await page.getByRole("alert").getByText("your session has ended").waitFor({ timeout: 15_000 });
    const listed = (await http(`${s.url}/tokens`)).body.tokens.find((x: { name: string }) => x.name === "ops-admin");
    expect(listed.revoked_at).toBeTruthy();
    await page.context().close();
  }, 30_000);

  test("at phone width the forms start folded and a state never breaks mid-word", async () => {
    const wide = await open(s.token!);
    await wide.goto(`${s.url}/#/tasks`);
    expect(await wide.locator("details").first().getAttribute("open")).not.toBeNull();
    await wide.context().close();
    // A long name leaves the state column little room: a task waiting for a proplet labelled gpu=true.
    const long = "quarterly-fleet-inventory-reconciliation-for-every-site";
    const waiting = await http(`${s.url}/tasks`, "POST", {
      name: long,
      file: b64("add"),
      requirements: { labels: { gpu: "true" } },
    });
    expect((await http(`${s.url}/tasks/${waiting.body.id}/start`, "POST")).status).toBe(200);
    const page = await open(s.token!, true, 390);
    await page.goto(`${s.url}/#/tasks`);
    await page.getByRole("link", { name: long }).waitFor();
    expect(await page.locator("details").first().getAttribute("open")).toBeNull();
    await page.getByText("Create a task").click();
    await page.getByRole("form", { name: "Create a task" }).waitFor();
    // One line box: the word is whole ("Complet/ed" made two).
    const lines = await page.evaluate(
      "[...document.querySelectorAll('td .s1, td .s3')].map((e) => e.getClientRects().length)",
    );
    expect(lines).toContain(1);
    expect((lines as number[]).every((n) => n === 1)).toBe(true);
    await page.goto(`${s.url}/#/jobs`);
    await page.getByText("Create a job from a file").waitFor();
    expect(await page.locator("details").first().getAttribute("open")).toBeNull();
    await page.context().close();
  });

  test("a chart fits its container: a phone's width, and past the old 900 px on a wide screen", async () => {
    const proplet = (await http(`${s.url}/proplets`)).body.proplets[0].id;
    for (const width of [390, 1440]) {
      const page = await open(s.token!, true, width);
      await page.goto(`${s.url}/#/proplets/${proplet}`);
      await page.locator(".chart canvas").first().waitFor({ timeout: 20_000 });
      const [chart, box] = (await page.evaluate(
        "(() => { const c = document.querySelector('.chart'); return [c.querySelector('.uplot').getBoundingClientRect().width, c.clientWidth]; })()",
      )) as [number, number];
      expect(chart).toBeLessThanOrEqual(box);
      expect(chart).toBeGreaterThan(box - 2);
      if (width === 1440) expect(chart).toBeGreaterThan(900);
      await page.context().close();
    }
  }, 45_000);

  test("no errors in the browser's console", () => {
    expect(errors.join("\n")).toBe("");
  });

  test("with serve gone, a task page keeps its details and Runs table, marked stale", async () => {
    const page = await open(s.token!, false); // the browser logs the dropped stream as an error
    await page.goto(`${s.url}/#/tasks/${doneId}`);
    await page.getByTestId("task-state").getByText("Completed").waitFor();
    await page.getByRole("cell", { name: "Completed" }).waitFor();
    await s.kill("SIGKILL");
    await page.getByRole("status").getByText("Live updates lost").waitFor({ timeout: 15_000 });
    // The page asked again and failed: each part keeps its data, marked with the reason.
    await page.locator('[data-stale="true"] .stale-note').first().waitFor({ timeout: 10_000 });
    expect(await page.locator(".stale-note").count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator("main").getAttribute("data-stale")).toBe("true");
    await page.getByText("last known data").first().waitFor();
    expect(await page.getByTestId("task-state").textContent()).toBe("Completed");
    expect(await page.getByTestId("task-result").textContent()).toBe("5");
    expect(await page.getByRole("cell", { name: "Completed" }).count()).toBe(1);
    await page.context().close();
  }, 30_000);
});
