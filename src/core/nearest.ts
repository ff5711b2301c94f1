// The word a person most likely meant: for "did you mean …?" in the CLI's errors and the API's 404s.

/**
 * The closest of `options` to `word` (edit distance at most 2), else the one option `word` is the start of
 * (`--proplet` for `--proplet-id`: a flag typed short was refused naming nothing), if any.
 */
export function nearest(word: string, options: string[]): string | undefined {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)] as number[]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      }
    }
    return d[a.length]![b.length]!;
  };
  let best: [string, number] | undefined;
  for (const o of options) {
    // The distance is at least the difference in length: most options need no table (a registry's thousands).
    if (Math.abs(o.length - word.length) > 2) continue;
    const n = dist(word, o);
    if (n <= 2 && (!best || n < best[1])) best = [o, n];
  }
  if (best) return best[0];
  // A start of at least 3 letters, and of only one option: "--p" or one shared by several names none.
  const starts = word.replace(/^-+/, "").length >= 3 ? options.filter((o) => o.startsWith(word)) : [];
  return starts.length === 1 ? starts[0] : undefined;
}

/**
 * The first key of `obj` that is no field but nearly one (`inptus`, `depend_on`, `execution-mode`), as an error
 * naming it and the field meant; undefined when there is none. A key far from every field is left alone: clients
 * of upstream's API send fields of their own, which are ignored as before. Such a typo was ignored silently: a
 * workflow task with `depend_on` ran at once, without waiting for its parent.
 */
export function typoKey(obj: unknown, known: readonly string[], where = ""): string | undefined {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return undefined;
  let looked = 0;
  for (const k of Object.keys(obj)) {
    if (known.includes(k) || UPSTREAM_READ_ONLY.has(k)) continue;
    // A body of a hundred thousand made-up keys costs a bounded look, not an edit distance each.
    if (++looked > MAX_KEYS_LOOKED) return undefined;
    const near = nearest(k, known as string[]) ?? partOf(k, known);
    if (near) return `${where}${k}: not a field (did you mean ${near}?)`;
  }
  return undefined;
}

/**
 * The one field `key` is a word of (`retries` of `max_retries`, as the CLI's flag says it), or shares all but the
 * last two letters with (`max_retry`); none when it is short or several fit. `"retries": 3` ran a task once.
 */
function partOf(key: string, known: readonly string[]): string | undefined {
  if (key.length < 5) return undefined;
  const stem = key.slice(0, Math.max(5, key.length - 2));
  const fits = known.filter((f) => f.endsWith(`_${key}`) || f.startsWith(`${key}_`) || f.startsWith(stem));
  return fits.length === 1 ? fits[0] : undefined;
}

/** Unknown keys of one object looked at for a typo: a person's typos are among the first few. */
const MAX_KEYS_LOOKED = 64;

/** A task's fields upstream's API shows and a client may send back: not typos, ignored as before. */
const UPSTREAM_READ_ONLY = new Set([
  "id",
  "state",
  "status",
  "results",
  "error",
  "start_time",
  "finish_time",
  "created_at",
  "updated_at",
  "next_run",
  "recurrence_type",
  "attempt",
]);
