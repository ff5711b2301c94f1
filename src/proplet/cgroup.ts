import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

// The container's memory and CPU from cgroup v2 (memory.current, memory.max, cpu.stat) or v1
// (memory/memory.usage_in_bytes, memory/memory.limit_in_bytes, cpuacct/cpuacct.usage). The root is
// configurable (PROPLET_CGROUP_ROOT) so tests can point it at a prepared tree.

export interface CgroupStats {
  version: 1 | 2;
  memory_usage_bytes?: number;
  /** Absent when unlimited. */
  memory_limit_bytes?: number;
  cpu_usage_seconds?: number;
}

const read = (p: string): string | undefined => {
  try {
    return readFileSync(p, "utf8").trim();
  } catch {
    return undefined;
  }
};
const num = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
/** v1 reports "no limit" as a huge number near 2^63. */
const limit = (v: number | undefined) => (v === undefined || v >= 2 ** 60 ? undefined : v);

/** This process's own cgroup v2 directory under the default root, else the root itself. */
function ownV2Dir(root: string): string {
  if (root !== "/sys/fs/cgroup") return root;
  const line = read("/proc/self/cgroup")
    ?.split("\n")
    .find((l) => l.startsWith("0::"));
  const dir = line ? join(root, line.slice(3)) : root;
  return existsSync(join(dir, "memory.current")) ? dir : root;
}

export function readCgroup(root = "/sys/fs/cgroup"): CgroupStats | undefined {
  const v2 = ownV2Dir(root);
  if (existsSync(join(v2, "memory.current")) || existsSync(join(v2, "cgroup.controllers"))) {
    const max = read(join(v2, "memory.max"));
    const usec = read(join(v2, "cpu.stat"))?.match(/^usage_usec (\d+)$/m)?.[1];
    return {
      version: 2,
      memory_usage_bytes: num(read(join(v2, "memory.current"))),
      memory_limit_bytes: max === "max" ? undefined : limit(num(max)),
      cpu_usage_seconds: usec !== undefined ? Number(usec) / 1e6 : undefined,
    };
  }
  if (existsSync(join(root, "memory", "memory.usage_in_bytes"))) {
    const ns = num(read(join(root, "cpuacct", "cpuacct.usage")));
    return {
      version: 1,
      memory_usage_bytes: num(read(join(root, "memory", "memory.usage_in_bytes"))),
      memory_limit_bytes: limit(num(read(join(root, "memory", "memory.limit_in_bytes")))),
      cpu_usage_seconds: ns !== undefined ? ns / 1e9 : undefined,
    };
  }
  return undefined;
}
