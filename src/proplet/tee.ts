import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

// Trusted execution environment detection at proplet start (issue 15), in upstream's order (TDX, then SEV, then
// SGX; the first match wins) and from the same evidence: device files, sysfs, /proc/cpuinfo flags and kernel
// messages. Unlike upstream, a CPU flag alone is read as a whole word of the `flags` line and only the guest flags
// count (`tdx_guest`; `sev`/`sev_es`/`sev_snp` only with evidence of a guest), so a host whose CPU merely supports
// SEV or SGX is not reported as a TEE. `root` is `/` on a device; tests point PROPLET_TEE_ROOT at a prepared tree
// (kernel messages then come from `<root>/dmesg` instead of the `dmesg` command).

export type TeeType = "tdx" | "sev" | "sev-snp" | "sgx" | "none";
export interface Tee {
  type: TeeType;
  /** What was seen, for the log. */
  evidence: string;
}

/**
 * Detects the TEE; kernel messages are read first (`dmesg` is a process to start, so it runs while the proplet
 * connects instead of on the start path).
 */
export async function detectTee(root = "/"): Promise<Tee> {
  return teeFrom(root, await kernelMessages(root));
}

function teeFrom(root: string, kmsg: string): Tee {
  const at = (p: string) => join(root, p);
  const has = (p: string) => existsSync(at(p));
  const nonEmpty = (p: string) => {
    try {
      return statSync(at(p)).size > 0 || readFileSync(at(p)).length > 0;
    } catch {
      return false;
    }
  };
  const flags = cpuFlags(at("proc/cpuinfo"));

  const tdx = ["dev/tdx_guest", "sys/firmware/tdx_guest"].find(has);
  if (tdx) return { type: "tdx", evidence: `/${tdx}` };
  if (flags.has("tdx_guest")) return { type: "tdx", evidence: "cpu flag tdx_guest" };
  if (/tdx: Guest initialized|virt\/tdx/.test(kmsg)) return { type: "tdx", evidence: "kernel: TDX guest" };

  const snp = flags.has("sev_snp") || /SEV-SNP/.test(kmsg);
  const sevStatus = "sys/firmware/efi/efivars/SevStatus-00000000-0000-0000-0000-000000000000";
  const sevGuest = has("dev/sev-guest") || nonEmpty(sevStatus) || /Memory Encryption Features active: .*SEV/.test(kmsg);
  if (sevGuest || has("dev/sev")) {
    const evidence = has("dev/sev-guest") ? "/dev/sev-guest" : has("dev/sev") ? "/dev/sev" : "kernel: SEV active";
    return { type: snp ? "sev-snp" : "sev", evidence };
  }

  const sgx = ["dev/sgx_enclave", "dev/sgx/enclave", "dev/isgx"].find(has);
  if (sgx) return { type: "sgx", evidence: `/${sgx}` };
  if (/sgx: EPC section|intel_sgx/.test(kmsg) && flags.has("sgx")) return { type: "sgx", evidence: "kernel: SGX EPC" };
  return { type: "none", evidence: "no TDX, SEV or SGX evidence" };
}

function cpuFlags(path: string): Set<string> {
  try {
    const line = readFileSync(path, "utf8")
      .split("\n")
      .find((l) => /^flags\s*:/.test(l));
    return new Set(
      line
        ? line
            .slice(line.indexOf(":") + 1)
            .trim()
            .split(/\s+/)
        : [],
    );
  } catch {
    return new Set();
  }
}

async function kernelMessages(root: string): Promise<string> {
  if (root !== "/") {
    try {
      return readFileSync(join(root, "dmesg"), "utf8");
    } catch {
      return "";
    }
  }
  try {
    const p = Bun.spawn(["dmesg", "--kernel"], { stdout: "pipe", stderr: "ignore" });
    const [text, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    return code === 0 ? text : "";
  } catch {
    return "";
  }
}
