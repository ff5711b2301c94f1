// Bounds on JSON from outside: how deep it nests and how large it is once stored.

/** True when the value nests objects or arrays deeper than `max` levels (checked without recursion). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/** Size of the value as stored JSON, in characters. */
export const jsonSize = (value: unknown): number => JSON.stringify(value)?.length ?? 0;
