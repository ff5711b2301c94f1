import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { b64, http, ROOT, runTask, type Serve, startServe, until } from "../helpers.ts";

// Accessibility (issue 28, item 9) in Debian's chromium against a real serve with its local proplet: axe-core
// finds no serious or critical violation on any page, in the light and the dark theme; each page has a title of
// its own; navigating moves focus to the page's heading; a skip link leads past the header; the workflow graph's
// nodes are links reached by Tab, each named by its task and state.

const AXE = join(ROOT, "node_modules", "axe-core", "axe.min.js");
let s: Serve;
let browser: Browser;
let taskId = "";
let workflowId = "";
let propletId = "";

interface Violation {
  id: string;
  impact?: string;
  help: string;
  nodes: { target: string[] }[];
}

async function open(scheme: "light" | "dark" = "light"): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: scheme });
  const page = await context.newPage();
  const res = await context.request.post(`${s.url}/session`, { data: { token: s.token } });
  expect(res.status()).toBe(200);
  await page.goto(s.url);
  await page.getByRole("navigation", { name: "Pages" }).waitFor();
  return page;
}

/** axe-core's serious and critical violations on the page as it is, each as "rule: help (targets)". */
async function axe(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: AXE });
  const found = (await page.evaluate(
    "axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations)",
  )) as Violation[];
  return found
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

const pages = () => [
  "#/",
  "#/proplets",
  `#/proplets/${propletId}`,
  "#/tasks",
  `#/tasks/${taskId}`,
  "#/workflows",
  `#/workflows/${workflowId}`,
  "#/jobs",
  "#/fl",
  "#/access",
];

beforeAll(async () => {
  s = await startServe();
  taskId = (await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3] })).id;
  const w = await http(`${s.url}/workflows`, "POST", {
    name: "pair",
    tasks: [
      { id: "first", name: "add", file: b64("add"), inputs: [1, 1] },
      { id: "second", name: "add", file: b64("add"), inputs: [1, 2], depends_on: ["first"] },
    ],
  });
  expect(w.status).toBe(201);
  workflowId = w.body.workflow_id;
  await http(`${s.url}/workflows/${workflowId}/start`, "POST");
  await http(`${s.url}/jobs`, "POST", { name: "quick", tasks: [{ name: "add", file: b64("add"), inputs: [1, 1] }] });
  await until("the workflow to end", async () => (await http(`${s.url}/workflows/${workflowId}`)).body.state >= 3);
  propletId = (await http(`${s.url}/proplets`)).body.proplets[0].id;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await s?.kill();
});

describe("accessibility", () => {
  for (const scheme of ["light", "dark"] as const) {
    test(`axe-core: no serious or critical violation on any page (${scheme})`, async () => {
      const page = await open(scheme);
      const found: string[] = [];
      for (const hash of pages()) {
        await page.goto(`${s.url}/${hash}`);
        await page.locator("main h1").waitFor();
        await page.waitForTimeout(400);
        for (const v of await axe(page)) found.push(`${hash}: ${v}`);
      }
      expect(found.join("\n")).toBe("");
      await page.context().close();
    }, 60_000);
  }

  test("each page has its own title; navigating moves focus to its heading; a skip link leads to it", async () => {
    const page = await open();
    const titles = new Set<string>();
    for (const hash of pages()) {
      await page.goto(`${s.url}/${hash}`);
      await page.locator("main h1").waitFor();
      await page.waitForTimeout(200);
      const title = await page.title();
      expect(title).toContain("Propeller");
      titles.add(title);
    }
    expect(titles.size).toBe(pages().length);
    // A link followed: the new page's heading has the focus.
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Jobs" }).click();
    await until("focus on the heading", async () => (await page.evaluate("document.activeElement?.tagName")) === "H1");
    expect(await page.evaluate("document.activeElement.textContent")).toBe("Jobs");
    // The skip link is the first stop of Tab and leads past the header.
    await page.goto(`${s.url}/#/tasks`);
    await page.reload();
    await page.locator("main h1").waitFor();
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement.textContent")).toBe("Skip to content");
    await page.keyboard.press("Enter");
    expect(await page.evaluate("document.activeElement.tagName")).toBe("H1");
    await page.context().close();
  }, 30_000);

  test("at phone width the workflow graph keeps a readable size and scrolls inside its box, not the page", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 800 } });
    await context.request.post(`${s.url}/session`, { data: { token: s.token } });
    const page = await context.newPage();
    await page.goto(`${s.url}/#/workflows/${workflowId}`);
    await page.locator("svg.dag").waitFor();
    const { scale, scroll, inner } = (await page.evaluate(`(() => {
      const svg = document.querySelector("svg.dag");
      return {
        scale: svg.getBoundingClientRect().width / svg.viewBox.baseVal.width,
        scroll: document.documentElement.scrollWidth,
        inner: window.innerWidth,
      };
    })()`)) as { scale: number; scroll: number; inner: number };
    expect(scale).toBeGreaterThanOrEqual(1);
    expect(scroll).toBe(inner);
    await context.close();
  });

  test("a chart has a table alternative", async () => {
    const page = await open();
    await page.goto(`${s.url}/#/proplets/${propletId}`);
    await page.locator(".chart canvas").first().waitFor({ timeout: 20_000 });
    const summary = page.locator(".chart-table summary").first();
    await summary.click();
    const table = page.locator(".chart-table table").first();
    await table.waitFor();
    expect(await table.locator("th").first().textContent()).toBe("Time");
    expect(await table.locator("tbody tr").count()).toBeGreaterThan(0);
    // A number in each series' column.
    expect(await table.locator("tbody tr").first().locator("td").nth(1).textContent()).toMatch(/^\d/);
    await page.context().close();
  }, 30_000);

  test("the workflow graph's nodes are links reached by Tab, named by task and state", async () => {
    const page = await open();
    await page.goto(`${s.url}/#/workflows/${workflowId}`);
    const first = page.getByRole("link", { name: "first Completed" });
    await first.waitFor();
    await page.getByRole("link", { name: "second Completed" }).waitFor();
    await first.focus();
    expect(await page.evaluate("document.activeElement.querySelector('title').textContent")).toBe("first Completed");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement.querySelector('title').textContent")).toBe("second Completed");
    await page.keyboard.press("Enter");
    await page.waitForURL(/#\/tasks\//);
    await page.context().close();
  });
});
