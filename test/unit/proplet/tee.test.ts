import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { detectTee } from "../../../src/proplet/tee.ts";
import { tempDir } from "../../helpers.ts";

// TEE detection on prepared trees (device files, sysfs, cpuinfo flags, kernel messages), as PROPLET_TEE_ROOT
// points the probes at them.

function tree(files: Record<string, string>): string {
  const root = tempDir("propeller-tee-");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}
const cpuinfo = (flags: string) => `processor\t: 0\nvendor_id\t: X\nflags\t\t: fpu vme ${flags} pse\n`;

describe("TEE detection", () => {
  test("each type from its evidence", async () => {
    expect(await detectTee(tree({ "dev/tdx_guest": "" }))).toEqual({ type: "tdx", evidence: "/dev/tdx_guest" });
    expect((await detectTee(tree({ "proc/cpuinfo": cpuinfo("tdx_guest") }))).type).toBe("tdx");
    expect((await detectTee(tree({ dmesg: "[0.1] tdx: Guest initialized\n" }))).type).toBe("tdx");
    expect((await detectTee(tree({ "dev/sev-guest": "" }))).type).toBe("sev");
    expect(
      (
        await detectTee(
          tree({
            "sys/firmware/efi/efivars/SevStatus-00000000-0000-0000-0000-000000000000": "\u0007\u0000",
            "proc/cpuinfo": cpuinfo("sev sev_es sev_snp"),
          }),
        )
      ).type,
    ).toBe("sev-snp");
    expect((await detectTee(tree({ dmesg: "Memory Encryption Features active: AMD SEV SEV-ES\n" }))).type).toBe("sev");
    expect(await detectTee(tree({ "dev/sgx_enclave": "" }))).toEqual({ type: "sgx", evidence: "/dev/sgx_enclave" });
    expect((await detectTee(tree({ "dev/sgx/enclave": "" }))).type).toBe("sgx");
  });

  test("TDX wins over SEV and SGX; a host whose CPU merely supports SEV or SGX is not a TEE", async () => {
    expect((await detectTee(tree({ "dev/tdx_guest": "", "dev/sgx_enclave": "" }))).type).toBe("tdx");
    expect((await detectTee(tree({ "proc/cpuinfo": cpuinfo("sev sev_es sgx") }))).type).toBe("none");
    expect((await detectTee(tree({ "proc/cpuinfo": cpuinfo("msevx") }))).type).toBe("none"); // a word, not a substring
    expect((await detectTee(tree({}))).type).toBe("none");
  });
});
