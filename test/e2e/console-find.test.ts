import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request } from "node:http";
import { type Browser, chromium, type Page } from "playwright-core";
import { b64, cli, http, type Serve, startServe, until } from "../helpers.ts";

// Finding tasks in the console (issue 28, items 1 to 3) against a real serve and its local proplet, in Debian's
// chromium: with 60-odd tasks, the state filter finds a failed task that the newest-first listing has on page 3;
// the search finds one by name; FL round tasks (results of ~96 KB each) stay out of the default list; the waiting
// reason shows on the list and the task's page; and what goes over the wire is measured: the console's first load
// and a 25-row list with the FL tasks in it, through a real HTTP request that accepts compression.

let s: Serve;
let browser: Browser;
const errors: string[] = [];
const ARGS = b64("args.component");
/** A result as big as an FL round's (it carries a model, ~96 KB): 10,000 "tick N" lines from small inputs. */
const MODEL_BYTES = 96 * 1024;

/** A request as a browser sends it, the body counted as it came over the wire (not decompressed). */
function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; bytes: number; encoding?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode!, bytes, encoding: res.headers["content-encoding"] as string | undefined }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

async function create(body: Record<string, unknown>, start = false): Promise<string> {
  const r = await http(`${s.url}/tasks`, "POST", body);
  expect(r.status).toBe(201);
  if (start) expect((await http(`${s.url}/tasks/${r.body.id}/start`, "POST")).status).toBe(200);
  return r.body.id as string;
}

const state = async (id: string) => (await http(`${s.url}/tasks/${id}`)).body.state as number;

let failedId = "";
let waitingId = "";

beforeAll(async () => {
  s = await startServe();
  // Oldest first: the failure, then the FL rounds, then 60 of the user's own; the newest-first list has the
  // failure on page 3 (row 61 of 61 with rounds hidden).
  failedId = await create({ name: "broken-import", file: ARGS, inputs: ["!x"] }, true);
  const rounds: string[] = [];
  for (let i = 1; i <= 6; i++) {
    rounds.push(await create({ name: `fl-round-demo-1-p${i}`, file: b64("ticker"), inputs: ["10000", "0"] }, true));
  }
  for (let i = 1; i <= 59; i++) await create({ name: `nightly-${String(i).padStart(2, "0")}`, file: ARGS });
  waitingId = await create({ name: "needs-gpu", file: ARGS, requirements: { labels: { gpu: "true" } } }, true);
  await until(
    "the failure and the rounds to end",
    async () => {
      if ((await state(failedId)) !== 4) return false;
      for (const id of rounds) if ((await state(id)) !== 3) return false;
      return true;
    },
    60_000,
  );
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await s?.kill();
});

async function open(width = 1280): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  const res = await context.request.post(`${s.url}/session`, { data: { token: s.token } });
  expect(res.status()).toBe(200);
  return page;
}

describe("finding tasks in the console", () => {
  test("the API: rounds hidden by default; the failure on page 3 unfiltered, first with state=Failed", async () => {
    const all = (await http(`${s.url}/tasks?limit=25&offset=50`)).body;
    expect(all.total).toBe(61);
    expect(all.tasks.map((t: { name: string }) => t.name)).toContain("broken-import");
    const failed = (await http(`${s.url}/tasks?state=Failed`)).body;
    expect(failed.tasks.map((t: { id: string }) => t.id)).toEqual([failedId]);
    expect((await http(`${s.url}/tasks?kind=federated`)).body.total).toBe(6);
  });

  test("the CLI: tasks list --state, --search, --rounds; a long result listed as its preview; a bad state named", () => {
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: s.token! };
    const failed = cli(["tasks", "list", "--state", "failed"], env);
    expect(failed.code).toBe(0);
    expect(failed.stdout).toContain("broken-import");
    expect(failed.stdout).toContain("1 of 1 task(s)");
    const found = cli(["tasks", "list", "--search", "NIGHTLY-1"], env);
    expect(found.stdout).toContain("10 of 10 task(s)");
    const rounds = cli(["tasks", "list", "--rounds", "--search", "fl-round", "--json"], env);
    const page = JSON.parse(rounds.stdout);
    expect(page.total).toBe(6);
    expect(page.tasks[0].results_truncated).toBe(true);
    const table = cli(["tasks", "list", "--rounds", "--search", "fl-round"], env);
    expect(table.stdout).toContain("tick 1");
    expect(table.stdout).toContain("6 of 6 task(s)");
    const bad = cli(["tasks", "list", "--state", "Done"], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('state: "Done" is not a state');
  });

  test("a 25-row list with the FL tasks in it is at most 64 KB on the wire, compressed", async () => {
    // Oldest first: the failure, the 6 rounds and 18 of the others.
    const url = `${s.url}/tasks?limit=25&include_rounds=true&sort=created_at&order=asc`;
    const auth = { authorization: `Bearer ${s.token}` };
    const plain = await rawGet(url, auth);
    const gz = await rawGet(url, { ...auth, "accept-encoding": "gzip, deflate, br" });
    const list = (await http(url)).body;
    const rounds = list.tasks.filter((t: { name: string }) => t.name.startsWith("fl-round-"));
    expect(rounds).toHaveLength(6);
    for (const r of rounds) {
      expect(r).toMatchObject({ results_truncated: true });
      expect(r.results_size).toBeGreaterThan(MODEL_BYTES);
      expect(r.results_preview).toHaveLength(256);
    }
    console.log(`25-row list with 6 FL tasks: ${plain.bytes} B identity, ${gz.bytes} B ${gz.encoding}`);
    expect(gz.status).toBe(200);
    expect(gz.encoding).toBe("gzip");
    expect(gz.bytes).toBeLessThan(plain.bytes);
    expect(plain.bytes).toBeLessThanOrEqual(64 * 1024);
    expect(gz.bytes).toBeLessThanOrEqual(64 * 1024);
    // The whole result is where the list says.
    const whole = (await http(`${s.url}/tasks/${rounds[0].id}/results`)).body.results as string;
    expect(whole).toContain("tick 10000");
    expect(whole.length).toBe(rounds[0].results_size);
  });

  test("the console: first load measured; filter Failed finds page 3's failure; search by name; sort by name; waiting reason", async () => {
    const page = await open();
    let bytes = 0;
    const counted: Promise<void>[] = [];
    let measuring = true;
    page.on("requestfinished", (req) => {
      // Only the first load is counted; a request that finishes as the page closes has no sizes to ask for.
      if (!measuring) return;
      counted.push(
        req
          .sizes()
          .then((z) => {
            bytes += z.responseBodySize + z.responseHeadersSize;
          })
          .catch(() => {}),
      );
    });
    await page.goto(`${s.url}/#/tasks`);
    const table = page.getByRole("table");
    await table.getByRole("link", { name: "needs-gpu" }).waitFor();
    await page.waitForLoadState("networkidle").catch(() => {});
    measuring = false;
    await Promise.all(counted);
    console.log(`console first load (tasks page, 25 rows): ${bytes} B over the wire`);
    expect(bytes).toBeLessThanOrEqual(50 * 1024);

    // Unfiltered, the failure is not on page 1; FL rounds are not listed at all.
    expect(await table.getByRole("link", { name: "broken-import" }).count()).toBe(0);
    expect(await table.getByRole("link", { name: /^fl-round-/ }).count()).toBe(0);
    await page.getByTestId("task-count").getByText("1–25 of 61").waitFor();
    // The waiting reason on the list.
    await table
      .getByText(/lacks label gpu=true|requirements/)
      .first()
      .waitFor();

    await page.getByLabel("State").selectOption("Failed");
    await table.getByRole("link", { name: "broken-import" }).waitFor();
    await page.getByTestId("task-count").getByText("1–1 of 1").waitFor();
    expect(await table.getByRole("row").count()).toBe(2); // header and the failure

    await page.getByLabel("State").selectOption("");
    await page.getByLabel("Search (name or id)").fill("nightly-07");
    await page.getByTestId("task-count").getByText("1–1 of 1").waitFor();
    await table.getByRole("link", { name: "nightly-07" }).waitFor();

    // Sorting by name (A to Z) on the server: across every task, not the page.
    await page.getByLabel("Search (name or id)").fill("");
    await page.getByTestId("task-count").getByText("1–25 of 61").waitFor();
    await page.getByRole("button", { name: "Name" }).click();
    await until("the list sorted by name", async () => {
      const first = await table.getByRole("row").nth(1).getByRole("link").first().textContent();
      return first === "broken-import";
    });
    expect(await page.locator("th[aria-sort=ascending]").textContent()).toContain("Name");

    // Rounds on request.
    await page.getByLabel("Show FL round tasks").check();
    await page.getByTestId("task-count").getByText("1–25 of 67").waitFor();

    // The waiting reason on the task's page.
    await page.goto(`${s.url}/#/tasks/${waitingId}`);
    await page
      .getByTestId("task-waiting")
      .getByText(/gpu=true/)
      .waitFor();
    expect(errors).toEqual([]);
  }, 60_000);
});
