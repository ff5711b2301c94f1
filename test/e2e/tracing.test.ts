import { afterAll, describe, expect, test } from "bun:test";
import { b64, http, type Proc, type Serve, spawnProplet, startServe, until, untilAlive } from "../helpers.ts";

// Tracing across processes: a real OTLP/HTTP receiver (a server in this test), serve and a standalone proplet
// exporting to it. One task's start → result must arrive as spans of one trace from both.

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  status?: { code: number };
  attributes?: { key: string; value: { stringValue?: string } }[];
}
const received: { service: string; span: OtlpSpan }[] = [];
const receiver = Bun.serve({
  port: 0,
  async fetch(req) {
    if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/traces") return new Response("no", { status: 404 });
    const body = (await req.json()) as {
      resourceSpans: {
        resource: { attributes: { key: string; value: { stringValue: string } }[] };
        scopeSpans: { spans: OtlpSpan[] }[];
      }[];
    };
    for (const rs of body.resourceSpans) {
      const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "";
      for (const ss of rs.scopeSpans) for (const span of ss.spans) received.push({ service, span });
    }
    return Response.json({});
  },
});
const endpoint = `http://127.0.0.1:${receiver.port}`;
let s: Serve | undefined;
let p: Proc | undefined;
afterAll(async () => {
  await p?.kill();
  await s?.kill();
  receiver.stop(true);
});

describe("tracing", () => {
  test("a task's start → result is one trace: the request, the dispatch in the manager, the run on the proplet", async () => {
    s = await startServe({ extra: ["--no-local-proplet"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint } });
    p = await spawnProplet(s, "traced", { PROPLET_OTEL_URL: endpoint });
    await untilAlive(s.url, "traced");
    const created = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] });
    await http(`${s.url}/tasks/${created.body.id}/start`, "POST");
    await until(
      "the task to complete",
      async () => (await http(`${s!.url}/tasks/${created.body.id}`)).body.state === 3,
    );
    const find = (service: string, name: string) =>
      received.find((r) => r.service === service && r.span.name === name)?.span;
    const spans = await until(
      "the spans of both processes",
      () => {
        // Named by its route, the path an attribute (a client's 16 KB paths, queued, took 1.4 GB).
        const request = find("propeller-manager", "POST /tasks/:id/start");
        const dispatch = find("propeller-manager", "dispatch add");
        const run = find("propeller-proplet", "run add");
        return request && dispatch && run && { request, dispatch, run };
      },
      10_000,
      100,
    );
    expect(spans.request.attributes).toContainEqual({
      key: "http.target",
      value: { stringValue: `/tasks/${created.body.id}/start` },
    });
    // An unauthenticated request with a long path: its span's name and target stay short.
    const long = `/${"x".repeat(16_000)}`;
    expect((await fetch(`${s.url}${long}`)).status).toBe(401);
    const refused = await until(
      "the refused request's span",
      () => received.find((r) => r.span.attributes?.some((a) => a.value.stringValue?.startsWith("/xxxx")))?.span,
      10_000,
      100,
    );
    expect(refused.name.length).toBeLessThan(64);
    expect(JSON.stringify(refused).length).toBeLessThan(2000);
    expect(spans.dispatch.traceId).toBe(spans.request.traceId);
    expect(spans.run.traceId).toBe(spans.request.traceId);
    expect(spans.dispatch.parentSpanId).toBe(spans.request.spanId);
    expect(spans.run.parentSpanId).toBe(spans.dispatch.spanId);
    expect(spans.run.status?.code).toBe(1);
    expect(spans.dispatch.status?.code).toBe(1);
  }, 30_000);
});
