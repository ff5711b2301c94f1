import { afterEach, describe, expect, test } from "bun:test";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { coalesced } from "../../../src/broker/coalesce.ts";

// A real loopback connection: what the broker writes in one turn arrives together, in order, and nothing written
// before a destroy is lost.

let server: Server | undefined;
afterEach(() => server?.close());

/** A connected pair: the server side coalesced (as the broker's), and what the client side receives. */
async function pair(): Promise<{ side: Socket; received: Buffer[]; client: Socket }> {
  const received: Buffer[] = [];
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer((s) => resolve(coalesced(s)));
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  const port = (server!.address() as { port: number }).port;
  const client = createConnection(port, "127.0.0.1");
  client.on("data", (b: Buffer) => received.push(b));
  return { side: await accepted, received, client };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await Bun.sleep(5);
}

describe("coalesced socket", () => {
  test("writes of one turn go out as one, in order, and each callback is called", async () => {
    const { side, received, client } = await pair();
    let called = 0;
    for (let i = 0; i < 10; i++) expect(side.write(Buffer.from(`${i},`), () => void called++)).toBe(true);
    side.write("end", "utf8");
    await until(() => Buffer.concat(received).toString().endsWith("end"));
    expect(Buffer.concat(received).toString()).toBe("0,1,2,3,4,5,6,7,8,9,end");
    expect(received.length).toBe(1);
    expect(called).toBe(10);
    client.destroy();
    side.destroy();
  });

  test("what was written before a destroy still goes out", async () => {
    const { side, received, client } = await pair();
    side.write(Buffer.from("refused"));
    side.destroy();
    await until(() => received.length > 0);
    expect(Buffer.concat(received).toString()).toBe("refused");
    client.destroy();
  });

  test("a full socket says so, and callbacks wait for it to drain", async () => {
    const { side, received, client } = await pair();
    client.pause(); // the reader stops reading: the socket fills
    const big = Buffer.alloc(1 << 20, 1);
    let full = false;
    for (let i = 0; i < 64 && !full; i++) {
      side.write(big);
      await new Promise((r) => setImmediate(r));
      full = !side.write(Buffer.alloc(1));
    }
    expect(full).toBe(true);
    let drained = false;
    side.write(Buffer.alloc(1), () => {
      drained = true;
    });
    await Bun.sleep(20);
    expect(drained).toBe(false);
    client.resume();
    await until(() => drained);
    expect(drained).toBe(true);
    expect(received.length).toBeGreaterThan(0);
    client.destroy();
    side.destroy();
  });
});
