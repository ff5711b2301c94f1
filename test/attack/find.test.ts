import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { b64, http, type Serve, startServe } from "../helpers.ts";

// The attack ring for GET /tasks's finding (issue 28): hostile query strings against a real serve (SQLite). Each
// is refused with a 400 naming the parameter, or answered as plain text (no wildcard, no SQL), and serve stays
// healthy.

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
  for (const name of ["alpha", "beta_1", "100% done", "fl-round-x-p1"]) {
    expect((await http(`${s.url}/tasks`, "POST", { name, file: b64("add") })).status).toBe(201);
  }
});
afterAll(async () => {
  await s?.kill();
});

const get = (query: string) => http(`${s.url}/tasks?${query}`);

describe("finding tasks: hostile queries", () => {
  test("oversized and repeated parameters are refused naming them", async () => {
    const cases: [string, string][] = [
      [`q=${"a".repeat(10_000)}`, "q: at most 200 characters"],
      ["q=a&q=b", "q: give it once, not several times"],
      [Array.from({ length: 500 }, () => "state=Failed").join("&"), "state: at most 20 values"],
      [`state=${"Failed,".repeat(1_000)}x`, 'state: "x" is not a state'],
      [`proplet_id=${"p".repeat(5_000)}`, "proplet_id: at most 200 characters"],
      ["sort=__proto__", "sort: must be one of"],
      ["sort=doc", "sort: must be one of"],
      ["order=asc;DROP TABLE tasks", "order: must be one of asc, desc"],
      ["kind=federated&kind=standard", "kind: give it once"],
    ];
    for (const [q, error] of cases) {
      const r = await get(q);
      expect({ q: q.slice(0, 40), status: r.status }).toEqual({ q: q.slice(0, 40), status: 400 });
      expect(r.body.error).toStartWith(error);
    }
    expect((await http(`${s.url}/health`)).status).toBe(200);
  });

  test("text is text: SQL and LIKE wildcards find nothing they do not spell; prototype keys change nothing", async () => {
    const names = async (q: string) => {
      const r = await get(q);
      expect(r.status).toBe(200);
      return (r.body.tasks as { name: string }[]).map((t) => t.name).sort();
    };
    expect(await names(`q=${encodeURIComponent("' OR 1=1 --")}`)).toEqual([]);
    expect(await names(`q=${encodeURIComponent("%")}`)).toEqual(["100% done"]);
    expect(await names(`q=${encodeURIComponent("_")}`)).toEqual(["beta_1"]);
    expect(await names(`proplet_id=${encodeURIComponent("x') OR ('1'='1")}`)).toEqual([]);
    expect(await names(`job_id=${encodeURIComponent("' OR job_id IS NULL --")}`)).toEqual([]);
    // A prototype key in the query is refused, never obeyed; the store is as it was.
    const proto = await get("__proto__=x&constructor=y&state=Pending");
    expect(proto).toEqual({ status: 400, body: { error: '__proto__: the key "__proto__" is not accepted' } });
    expect((await get("")).body.total).toBe(3);
    expect((await get("include_rounds=true")).body.total).toBe(4);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  });
});
