import { describe, expect, test } from "bun:test";
import { Channel } from "../../../src/manager/events.ts";

// The event seam: subscribers never run inside the publisher's call, see events in order, and one broken
// subscriber does not keep the others from theirs.

describe("event seam", () => {
  test("delivery is deferred, ordered, and isolated from a failing subscriber", async () => {
    const ch = new Channel<number>();
    const seen: number[] = [];
    ch.subscribe(() => {
      throw new Error("broken subscriber");
    });
    const off = ch.subscribe((n) => seen.push(n));
    ch.publish(1);
    ch.publish(2);
    expect(seen).toEqual([]); // nothing ran while the publisher was on the stack
    await Promise.resolve();
    expect(seen).toEqual([1, 2]);
    off();
    ch.publish(3);
    await Promise.resolve();
    expect(seen).toEqual([1, 2]);
    expect(ch.listeners).toBe(1);
  });
});
