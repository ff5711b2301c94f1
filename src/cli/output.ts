// Output for people (aligned tables, key: value blocks) and for scripts (--json).

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

const show = (v: unknown): string =>
  v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v);

export function printTable(rows: Record<string, unknown>[], columns: [header: string, key: string][]): void {
  const cells = rows.map((r) => columns.map(([, k]) => show(r[k]).replace(/\s+/g, " ").slice(0, 60)));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${line(columns.map(([h]) => h))}\n`);
  for (const c of cells) process.stdout.write(`${line(c)}\n`);
}

export function printRecord(r: Record<string, unknown>): void {
  const keys = Object.keys(r);
  const w = Math.max(...keys.map((k) => k.length));
  for (const k of keys) process.stdout.write(`${k.padEnd(w)}  ${show(r[k])}\n`);
}
