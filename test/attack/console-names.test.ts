import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Browser, chromium } from "playwright-core";
import { assemble, b64, http, runTask, type Serve, startServe } from "../helpers.ts";

// Names the console now shows (issue 28, item 5; item 3's export list) as an attacker writes them: a workflow's or
// job's name of a megabyte, across lines, or made of HTML meant to run in an admin's console; a module whose
// export names are HTML, chosen in the create form; and the console's new way in, copying a task, tried by a viewer
// and with forged or unbounded fields. Played against a real serve, read in Debian's chromium.

let s: Serve;
let browser: Browser;
const EVIL = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`;
const task = [{ name: "add", file: b64("add") }];

beforeAll(async () => {
  s = await startServe();
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await s?.kill("SIGKILL");
});

describe("names shown by the console", () => {
  test("a workflow's or job's name of a megabyte, or of several lines, is refused naming the field; serve stays up", async () => {
    for (const path of ["/workflows", "/jobs"]) {
      const huge = await http(`${s.url}${path}`, "POST", { name: "w".repeat(1 << 20), tasks: task });
      expect(huge.status).toBe(400);
      expect(huge.body.error).toContain("name: must be at most 200 characters");
      const lines = await http(`${s.url}${path}`, "POST", { name: "ok\n\u001b[31mfake log line", tasks: task });
      expect(lines.status).toBe(400);
      expect(lines.body.error).toContain("name: must be one line");
    }
    expect((await http(`${s.url}/workflows`)).body.total).toBe(0);
    expect((await http(`${s.url}/jobs`)).body.total).toBe(0);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  });

  test("HTML in a workflow's and a job's name is shown as text in the console, never run", async () => {
    const w = await http(`${s.url}/workflows`, "POST", { name: EVIL, tasks: task });
    expect(w.status).toBe(201);
    expect(w.body.name).toBe(EVIL);
    expect((await http(`${s.url}/jobs`, "POST", { name: EVIL, tasks: task })).status).toBe(201);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    expect((await context.request.post(`${s.url}/session`, { data: { token: s.token } })).status()).toBe(200);
    const page = await context.newPage();
    for (const hash of ["#/workflows", `#/workflows/${w.body.workflow_id}`, "#/jobs"]) {
      await page.goto(`${s.url}/${hash}`);
      await page.getByText(EVIL).first().waitFor();
      expect(await page.locator("main img").count()).toBe(0);
      expect(await page.locator("main script").count()).toBe(0);
    }
    await page.goto(`${s.url}/#/workflows/${w.body.workflow_id}`);
    await page.getByRole("heading", { name: `Workflow ${EVIL}` }).waitFor();
    // The page's title is text too (document.title is never parsed as HTML).
    expect(await page.title()).toBe(`Workflow ${EVIL} · Propeller`);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    await context.close();
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }, 30_000);

  test("a module whose exports are named in HTML: the create form lists them as text", async () => {
    const wasm = await assemble(
      `(module (func (export "<img src=x onerror=\\"window.__pwned=3\\">")) (func (export "ok")))`,
    );
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.request.post(`${s.url}/session`, { data: { token: s.token } });
    const page = await context.newPage();
    await page.goto(`${s.url}/#/tasks`);
    const form = page.getByRole("form", { name: "Create a task" });
    await form
      .locator("input[name=file]")
      .setInputFiles({ name: "evil.wasm", mimeType: "application/wasm", buffer: Buffer.from(wasm) });
    await form.getByTestId("export-hint").getByText('<img src=x onerror="window.__pwned=3">()').waitFor();
    expect(await page.locator("main img").count()).toBe(0);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    await context.close();
  }, 30_000);
});

describe("copying a task (POST /tasks/{id}/clone)", () => {
  test("a viewer cannot copy; a copy cannot take server-owned fields; unset is bounded; serve stays up", async () => {
    const made = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] });
    expect(made.status).toBe(201);
    const id = made.body.id as string;
    const viewer = (await http(`${s.url}/tokens`, "POST", { name: "onlooker", role: "viewer" })).body.token as string;
    const asViewer = await fetch(`${s.url}/tasks/${id}/clone`, {
      method: "POST",
      headers: { authorization: `Bearer ${viewer}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(asViewer.status).toBe(403);
    const before = (await http(`${s.url}/tasks`)).body.total as number;
    // Server-owned fields in the body are not the copy's: a fresh, Pending task, no results, no workflow name.
    const forged = await http(`${s.url}/tasks/${id}/clone`, "POST", {
      state: 3,
      results: "forged",
      workflow_name: EVIL,
      id: "chosen-id",
    });
    expect(forged.status).toBe(201);
    expect(forged.body).toMatchObject({ state: 0, status: "Pending" });
    expect(forged.body.id).not.toBe("chosen-id");
    for (const k of ["results", "workflow_name"]) expect(forged.body[k]).toBeUndefined();
    const huge = await http(`${s.url}/tasks/${id}/clone`, "POST", { unset: Array(1000).fill("env") });
    expect(huge.status).toBe(400);
    expect(huge.body.error).toContain("unset");
    const odd = await http(`${s.url}/tasks/${id}/clone`, "POST", { unset: ["__proto__"] });
    expect(odd.status).toBe(400);
    expect((await http(`${s.url}/tasks`)).body.total).toBe(before + 1);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  });
});

describe("ids as steps in the console's addresses", () => {
  test("a task, workflow or proplet id that is a path step is refused; an env name no guest can hold, a 1 MB name too", async () => {
    const proplet = (await http(`${s.url}/proplets`)).body.proplets[0].id as string;
    const step = `..%2Fproplets%2F${proplet}`;
    for (const [path, body, field] of [
      ["/workflows", { tasks: [{ id: step, name: "add", file: b64("add") }] }, "tasks.0.id"],
      ["/workflows", { tasks: [{ id: "..", name: "add", file: b64("add") }] }, "tasks.0.id"],
      ["/jobs", { name: "j", tasks: [{ id: "../x", name: "add", file: b64("add") }] }, "tasks.0.id"],
      ["/workflows", { tasks: [{ name: "add", file: b64("add"), workflow_id: ".." }] }, "tasks.0.workflow_id"],
      ["/entities", { kind: "proplet", id: ".." }, "id"],
      ["/tokens", { name: "..", role: "viewer" }, "name"],
      ["/tasks", { name: "add", file: b64("add"), env: { "bad name": "1" } }, "env"],
      ["/tasks", { name: "w".repeat(1 << 20), file: b64("add") }, "name"],
      // A right-to-left override: "\u202egnp.exe" showed as "exe.png".
      ["/tasks", { name: "\u202egnp.exe", file: b64("add") }, "name: must not hold bidirectional"],
      ["/workflows", { name: "\u202egnp.exe", tasks: [{ name: "add", file: b64("add") }] }, "name: must not hold"],
      ["/tasks", { name: "add\n\u001b[31mfake log line", file: b64("add") }, "name: must be one line"],
    ] as const) {
      const r = await http(`${s.url}${path}`, "POST", body);
      expect({ path, field, status: r.status }).toEqual({ path, field, status: 400 });
      expect(r.body.error).toContain(field);
    }
    expect((await http(`${s.url}/proplets/${proplet}`)).status).toBe(200);
  });

  test("a link to #/tasks/..%2Fproplets%2FID shows no task and its Delete reaches no other route", async () => {
    const proplet = (await http(`${s.url}/proplets`)).body.proplets[0].id as string;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    expect((await context.request.post(`${s.url}/session`, { data: { token: s.token } })).status()).toBe(200);
    const page = await context.newPage();
    const asked: string[] = [];
    page.on("request", (r) => asked.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.goto(`${s.url}/#/tasks/..%2Fproplets%2F${proplet}`);
    await page
      .getByText(/not found/)
      .first()
      .waitFor();
    // The id stays one segment: the page asked for that "task", never for the proplet (it showed the proplet as a
    // task, and its Delete button sent DELETE /proplets/ID).
    expect(asked.filter((a) => a.includes(`/proplets/${proplet}`))).toEqual([]);
    expect(await page.getByRole("button", { name: "Delete" }).count()).toBe(0);
    // `..` itself is a step, not an id: no page, and nothing asked of another route.
    asked.length = 0;
    await page.goto(`${s.url}/#/tasks/..`);
    await page.getByText("No page #/tasks/..").waitFor();
    expect(asked.filter((a) => !a.includes("/events") && !a.includes("/session"))).toEqual([]);
    await context.close();
    expect((await http(`${s.url}/proplets/${proplet}`)).status).toBe(200);
  }, 30_000);
});

describe("the console inside another page's frame", () => {
  test("a page on another port of this host cannot frame the signed-in console (clickjacking)", async () => {
    const evil = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () =>
        new Response(`<iframe id="c" src="${s.url}/" width="1200" height="800"></iframe>`, {
          headers: { "content-type": "text/html" },
        }),
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      expect((await context.request.post(`${s.url}/session`, { data: { token: s.token } })).status()).toBe(200);
      const page = await context.newPage();
      const framed = page.waitForResponse((r) => r.url() === `${s.url}/`);
      await page.goto(`http://127.0.0.1:${evil.port}/`);
      const res = await framed;
      expect(res.headers()["x-frame-options"]).toBe("DENY");
      expect(res.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
      await Bun.sleep(500);
      // The browser kept the console out of the frame: no page of it to click through.
      const frame = page.frames().find((f) => f !== page.mainFrame());
      expect(frame).toBeDefined();
      expect(await frame!.locator("nav").count()).toBe(0);
      // On its own, the same browser shows it.
      await page.goto(`${s.url}/`);
      await page.getByRole("navigation", { name: "Pages" }).waitFor();
    } finally {
      await context.close();
      evil.stop(true);
    }
  }, 30_000);
});

describe("a guest's text in the console", () => {
  test("a guest's result or error holding a right-to-left override is shown with it written out, not read backwards", async () => {
    // hello prints "Hello, <input>!": an unclosed U+202E turned the rest of the Result field around.
    const t = await runTask(s.url, { name: "hello", file: b64("hello"), inputs: ["\u202egnp.exe"] });
    expect(t.results).toContain("\u202e");
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    expect((await context.request.post(`${s.url}/session`, { data: { token: s.token } })).status()).toBe(200);
    const page = await context.newPage();
    await page.goto(`${s.url}/#/tasks/${t.id}`);
    const result = page.locator("dt:text-is('Result') + dd");
    await result.waitFor();
    expect(await result.textContent()).toContain("\\u202egnp.exe");
    expect(await result.textContent()).not.toContain("\u202e");
    await context.close();
  }, 30_000);
});
