import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { b64, FIXTURES, http, ROOT, runTask, type Serve, startServe, tempDir, until } from "../helpers.ts";

// The web console in a real browser (Debian's chromium through playwright-core) against a real serve with its
// local proplet: signing in by the one-time link and with a pasted token, creating and running a task, stopping
// one, a workflow's graph changing colour live, a viewer's disabled controls, phone width, and no errors in the
// browser's console.

const ARTIFACTS = join(ROOT, "test", "artifacts");
let s: Serve;
let browser: Browser;
const errors: string[] = [];

/** A page of its own browser context; what goes wrong in it is kept in `errors` unless `watch` is off. */
async function blank(width = 1280, watch = true): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  if (watch) {
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  }
  return page;
}

/** Signs a page in by pasting a token, as a user with a token does. */
async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Pages" }).waitFor();
}

/** A signed-in page: its browser context signed in with the token (POST /session), as the sign-in form does. */
async function open(token: string, width = 1280, watch = true): Promise<Page> {
  const page = await blank(width, watch);
  const res = await page.context().request.post(`${s.url}/session`, { data: { token } });
  expect(res.status()).toBe(200);
  await page.goto(s.url);
  await page.getByRole("navigation", { name: "Pages" }).waitFor();
  return page;
}

/** The one-time sign-in link serve printed at its (last) start. */
const link = () => /(http:\/\/\S+\/#login=[\w-]+)/.exec(s.output())![1]!;

beforeAll(async () => {
  s = await startServe();
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
  mkdirSync(ARTIFACTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await s?.kill();
});

describe("the console", () => {
  test("the link signs in once and leaves the address bar; the session is an HttpOnly, SameSite=Strict cookie holding no token", async () => {
    const page = await blank();
    await page.goto(link());
    await page.getByRole("navigation", { name: "Pages" }).waitFor();
    expect(page.url()).not.toContain("login");
    await page.getByText("(admin)").waitFor();
    const [cookie] = await page.context().cookies();
    expect(cookie).toMatchObject({ name: "propeller_session", httpOnly: true, sameSite: "Strict" });
    expect(cookie!.value).not.toBe(s.token);
    // The same link again, in another browser: spent.
    const again = await blank(1280, false); // not watched: the refusal is the point
    await again.goto(link());
    await again.getByRole("alert").getByText("the sign-in link was refused").waitFor();
    expect(again.url()).not.toContain("login");
    // An old link with the token in the query string is not used, and leaves the address bar.
    await again.goto(`${s.url}/?token=${s.token}`);
    await again.getByRole("alert").getByText("?token= is not accepted").waitFor();
    expect(again.url()).not.toContain("token");
    await again.context().close();
    // The overview counts the local proplet, alive.
    await page.getByTestId("proplets-alive").getByText("1 / 1").waitFor();

    await page.screenshot({ path: join(ARTIFACTS, "overview.png"), fullPage: true });
    // A change with the cookie but without the console's header (another site's form) is refused.
    const quiet = await open(s.token!, 1280, false);
    const forged = await quiet.evaluate(async () => (await fetch("/tasks", { method: "POST", body: "{}" })).status);
    expect(forged).toBe(403);
    await quiet.context().close();
    // A bad pasted token is refused in plain words.
    const other = await browser.newPage(); // not watched: the refusal is the point
    await other.goto(s.url);
    await other.getByLabel("Token").fill("not-a-token");
    await other.getByRole("button", { name: "Sign in" }).click();
    await other.getByRole("alert").getByText("invalid or revoked token").waitFor();
    await other.close();
    await page.context().close();
  });

  test("upload add.wasm with inputs 10,20, start it, and see 30 without reloading", async () => {
    const page = await open(s.token!);
    await page.getByRole("link", { name: "Tasks" }).click();
    const form = page.getByRole("form", { name: "Create a task" });
    await form.getByLabel("Name").fill("add");
    await form.getByLabel("Module (.wasm)").setInputFiles(join(FIXTURES, "add.wasm"));
    await form.getByLabel("Inputs (comma-separated)").fill("10,20");
    await form.getByRole("button", { name: "Create task" }).click();
    await page.getByTestId("task-result").getByText("30", { exact: true }).waitFor({ timeout: 15_000 });
    await page.getByTestId("task-state").getByText("Completed").waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "task.png"), fullPage: true });
    // A mistake is said next to the form: no module given.
    await page.getByRole("link", { name: "Tasks" }).click();
    await form.getByLabel("Name").fill("nothing");
    await form.getByRole("button", { name: "Create task" }).click();
    await form
      .locator("..")
      .getByRole("alert")
      .getByText("give a .wasm file, an image reference or an example")
      .waitFor();
    // An example the program carries, chosen from the list.
    await form.getByLabel("Name").fill("hello");
    await form.getByLabel("or an example").selectOption("hello");
    await form.getByLabel("Inputs (comma-separated)").fill("Console");
    await form.getByRole("button", { name: "Create task" }).click();
    await page.getByTestId("task-result").getByText("Hello, Console!").waitFor({ timeout: 15_000 });
    await page.context().close();
  });

  test("a task with a long error leaves the list's other columns their width; the error shows its first lines", async () => {
    const flood = await runTask(s.url, { name: "flood", file: b64("stderr-flood") });
    expect(flood.state).toBe(4);
    const page = await open(s.token!);
    await page.getByRole("link", { name: "Tasks" }).click();
    const row = page
      .getByRole("row")
      .filter({ has: page.getByRole("link", { name: "flood" }) })
      .first();
    await row.waitFor();
    // It squeezed Proplet, Result and Created to one letter wide.
    for (const head of ["Proplet", "Result", "Created"]) {
      const box = await page.getByRole("columnheader", { name: head }).boundingBox();
      expect({ head, wide: (box?.width ?? 0) >= 50 }).toEqual({ head, wide: true });
    }
    const error = await row.locator(".error").boundingBox();
    expect(error!.height).toBeLessThan(80);
    await page.context().close();
  });

  test("stop a spinning task from its page", async () => {
    const created = await http(`${s.url}/tasks`, "POST", { name: "spin", file: b64("spin") });
    await http(`${s.url}/tasks/${created.body.id}/start`, "POST");
    const page = await open(s.token!);
    await page.goto(`${s.url}/#/tasks/${created.body.id}`);
    await page.getByTestId("task-state").getByText("Running").waitFor({ timeout: 10_000 });
    await page.getByRole("button", { name: "Stop" }).click();
    await page.getByTestId("task-state").getByText("Interrupted").waitFor({ timeout: 10_000 });
    await page.context().close();
  });

  test("a three-task workflow from a file: its nodes change colour as it runs", async () => {
    const dir = tempDir();
    const spec = join(dir, "chain.json");
    const tick = { file: b64("ticker"), inputs: [3, 300] };
    writeFileSync(
      spec,
      JSON.stringify({
        name: "chain",
        tasks: [
          { id: "first", name: "ticker", ...tick },
          { id: "second", name: "ticker", ...tick, depends_on: ["first"] },
          { id: "third", name: "ticker", ...tick, depends_on: ["second"] },
        ],
      }),
    );
    const page = await open(s.token!);
    await page.getByRole("link", { name: "Workflows" }).click();
    await page.getByLabel("Workflow file (JSON or YAML)").setInputFiles(spec);
    await page.getByRole("button", { name: "Create and start" }).click();
    const third = page.locator('g[data-task="third"]');
    await third.waitFor({ timeout: 10_000 });
    const seen = new Set<string>();
    await until(
      "the third node to turn Completed",
      async () => {
        const state = await third.getAttribute("data-state");
        if (state) seen.add(state);
        return state === "Completed";
      },
      20_000,
      100,
    );
    // Seen waiting, then done, on one page that was never reloaded.
    expect([...seen].some((x) => x !== "Completed")).toBe(true);
    expect(await page.locator('g[data-state="Completed"]').count()).toBe(3);
    await page.screenshot({ path: join(ARTIFACTS, "workflow.png"), fullPage: true });
    await page.context().close();
  });

  test("a viewer sees everything and changes nothing; one line says why", async () => {
    const viewer = await http(`${s.url}/tokens`, "POST", { name: "watcher", role: "viewer" });
    const page = await open(viewer.body.token);
    await page.getByText("watcher (viewer)").waitFor();
    await page.getByRole("link", { name: "Tasks" }).click();
    await page.getByRole("heading", { name: "All tasks" }).waitFor();
    expect(await page.getByTestId("read-only").textContent()).toContain("a viewer token may look, not change");
    expect(await page.getByRole("form", { name: "Create a task" }).count()).toBe(0);
    await page.getByRole("link", { name: "Access" }).click();
    await page.getByText("Tokens and identities are for admins").waitFor();
    await page.context().close();
  });

  test("every page at phone width (390 px) has no sideways scroll; no errors in the browser's console", async () => {
    const tasks = (await http(`${s.url}/tasks?limit=1`)).body.tasks;
    const proplets = (await http(`${s.url}/proplets`)).body.proplets;
    const pages = [
      ["overview", "#/"],
      ["proplets", "#/proplets"],
      ["proplet", `#/proplets/${proplets[0].id}`],
      ["tasks", "#/tasks"],
      ["task-detail", `#/tasks/${tasks[0].id}`],
      ["workflows", "#/workflows"],
      ["jobs", "#/jobs"],
      ["fl", "#/fl"],
      ["access", "#/access"],
    ];
    const page = await open(s.token!, 390);
    for (const [name, hash] of pages) {
      await page.goto(`${s.url}/${hash}`);
      await page.locator("main h1").waitFor();
      await page.waitForTimeout(300);
      // A string: this file is not typed for the DOM.
      const { scroll, inner } = (await page.evaluate(
        "({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth })",
      )) as { scroll: number; inner: number };
      expect(`${name}: ${scroll}`).toBe(`${name}: ${inner}`);
      await page.screenshot({ path: join(ARTIFACTS, `phone-${name}.png`), fullPage: true });
    }
    await page.context().close();
    expect(errors.join("\n")).toBe("");
  }, 30_000);

  test("a lost connection shows a banner; sessions live in serve's memory, so after a restart the page asks to sign in again", async () => {
    const page = await open(s.token!, 1280, false); // the browser logs the dropped stream as an error
    await page.getByTestId("proplets-alive").waitFor();
    await s.kill("SIGKILL");
    await page.getByRole("status").getByText("Live updates lost").waitFor({ timeout: 15_000 });
    s = await startServe({ dataDir: s.dataDir, ports: { http: s.httpPort, mqtt: s.mqttPort } });
    await page.getByRole("alert").getByText("your session has ended").waitFor({ timeout: 20_000 });
    await signIn(page, s.token!);
    // Live again: a task created now shows up without a reload.
    await page.getByRole("link", { name: "Tasks" }).click();
    const created = await http(`${s.url}/tasks`, "POST", { name: "after-restart", file: b64("add"), inputs: [1, 1] });
    await http(`${s.url}/tasks/${created.body.id}/start`, "POST");
    await page.getByRole("link", { name: "after-restart" }).waitFor({ timeout: 10_000 });
    await page.context().close();
  }, 60_000);
});
