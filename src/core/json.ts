// Bounds on JSON from outside: how deep it nests and how large it is once stored.

/**
 * The deepest nesting accepted from outside (REST bodies, MQTT payloads): JSON.parse takes far deeper, but
 * JSON.stringify and the schema checks recurse, and a stack overflow there brought serve down (a proplet's result
 * or registry request nested 100,000 arrays deep, re-serialized by the broker's ACL).
 */
export const MAX_JSON_DEPTH = 32;

/** True when the value nests objects or arrays deeper than `max` levels (checked without recursion). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth >= max) return true;
    // Only what nests is walked: an FL update's million weights are not a million stack entries.
    for (const child of Array.isArray(v) ? v : Object.values(v))
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

/** Size of the value as stored JSON, in characters. */
export const jsonSize = (value: unknown): number => JSON.stringify(value)?.length ?? 0;

/**
 * Keys that name an object's prototype machinery: merged with `obj[key] = value` (zod's records, a spread into a
 * class, a later deep merge) they change or drop what the user meant, so a body holding one is refused.
 */
export const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/**
 * What is wrong with the shape of JSON from outside, if anything: nesting deeper than `max` levels, or a key in
 * FORBIDDEN_KEYS (named with its path, e.g. `metadata.__proto__`). One walk, without recursion.
 */
export function jsonShapeProblem(value: unknown, max: number): string | undefined {
  const stack: [unknown, number, string][] = [[value, 0, ""]];
  while (stack.length) {
    const [v, depth, path] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth >= max) return `body nests deeper than ${max} levels`;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        if (typeof v[i] === "object") stack.push([v[i], depth + 1, `${path}${i}.`]);
      }
      continue;
    }
    for (const k of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(k)) return `${path}${k}: the key ${JSON.stringify(k)} is not accepted`;
      const child = (v as Record<string, unknown>)[k];
      if (typeof child === "object") stack.push([child, depth + 1, `${path}${k}.`]);
    }
  }
  return undefined;
}
