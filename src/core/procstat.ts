// Linux /proc/<pid>/stat (proc(5)). The command name sits in parentheses and may itself hold spaces and
// parentheses, so the fields are split after the last ")".

/** The fields after the command name: [0] state, [11] utime, [12] stime, [19] start time, [21] RSS in pages. */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User + system CPU time in clock ticks. */
export function cpuTicks(fields: string[]): number {
  return Number(fields[11]) + Number(fields[12]);
}
