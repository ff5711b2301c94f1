import { Reader, skipValType, vecReader } from "./wasm-binary.ts";
import { firstImmediate, readInstr } from "./wasm-expr.ts";

// Which functions recurse through direct calls, for the interrupt instrumentation (wasm-instrument.ts).
//
// A function that makes calls counts a module-wide counter down at its entry, so recursion cannot run without end
// between two host checks. In a recursive call tree that check runs at every call, and for a small function it is
// most of the cost (recursive fib: 1.4× the original). A recursive function small enough gets a twin without the
// entry check: calls within its cycle go from the checked function to the twin and from the twin back to checked
// functions, so every second call down a recursion still checks. Between two checks there is then at most one
// unchecked frame on the way, and what it does without a check is bounded by its own code (its loops check).

/** Where each function's body starts in the code section (at its size) and the defined functions it calls. */
export interface CodeMap {
  offsets: number[];
  sizes: number[];
  calls: number[][];
}

export function mapCode(code: Uint8Array, funcImports: number): CodeMap {
  const [r, count] = vecReader(code);
  const out: CodeMap = { offsets: [], sizes: [], calls: [] };
  for (let i = 0; i < count; i++) {
    out.offsets.push(r.pos);
    const size = r.u32();
    const end = r.pos + size;
    out.sizes.push(size);
    for (let g = r.u32(); g > 0; g--) {
      r.u32();
      skipValType(r);
    }
    const calls = new Set<number>();
    const body = new Reader(code, end);
    body.pos = r.pos;
    while (body.pos < end) {
      const at = body.pos;
      const op = readInstr(body);
      if (op === 0x10 || op === 0x12) {
        const target = firstImmediate(code, at) - funcImports;
        if (target >= 0) calls.add(target);
      }
    }
    out.calls.push([...calls]);
    r.pos = end;
  }
  return out;
}

/**
 * The strongly connected component of each function in the direct call graph, or -1 for a function in no cycle
 * (Tarjan's algorithm, iterative: a module may hold a call chain deeper than the JS stack).
 */
export function recursiveComponents(calls: number[][]): Int32Array {
  const n = calls.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const onStack = new Uint8Array(n);
  const comp = new Int32Array(n).fill(-1);
  const stack: number[] = [];
  let next = 0;
  let comps = 0;
  for (let root = 0; root < n; root++) {
    if (index[root] !== -1) continue;
    const work: [number, number][] = [[root, 0]];
    index[root] = low[root] = next++;
    stack.push(root);
    onStack[root] = 1;
    while (work.length) {
      const top = work[work.length - 1]!;
      const [v, k] = top;
      const edges = calls[v]!;
      if (k < edges.length) {
        top[1]++;
        const w = edges[k]!;
        if (w >= n) continue; // a malformed index: the engine refuses the module anyway
        if (index[w] === -1) {
          index[w] = low[w] = next++;
          stack.push(w);
          onStack[w] = 1;
          work.push([w, 0]);
        } else if (onStack[w]) low[v] = Math.min(low[v]!, index[w]!);
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low[parent[0]] = Math.min(low[parent[0]]!, low[v]!);
      if (low[v] !== index[v]) continue;
      const members: number[] = [];
      for (;;) {
        const w = stack.pop()!;
        onStack[w] = 0;
        members.push(w);
        if (w === v) break;
      }
      // A cycle: more than one function, or one that calls itself.
      if (members.length > 1 || calls[v]!.includes(v)) {
        for (const w of members) comp[w] = comps;
        comps++;
      }
    }
  }
  return comp;
}

/** Recursive functions that get an unchecked twin, each with its twin's ordinal; bounded in size each and in all. */
export function chooseTwins(
  comp: Int32Array,
  sizes: number[],
  maxEach = 16 << 10,
  maxTotal = 1 << 20,
): Map<number, number> {
  const twins = new Map<number, number>();
  let total = 0;
  for (let f = 0; f < comp.length; f++) {
    const size = sizes[f]!;
    if (comp[f] === -1 || size > maxEach || total + size > maxTotal) continue;
    twins.set(f, twins.size);
    total += size;
  }
  return twins;
}
