import { describe, expect, test } from "bun:test";
import {
  canHost,
  describeRequirements,
  propletLabels,
  Requirements,
  SELF_TRUSTED,
  UNVOUCHED,
  unmet as unmetBy,
} from "../../../src/core/requirements.ts";
import { propletSdf } from "../../../src/core/sdf.ts";

// Placement constraints as data, and the SDF document's shape.

const meta = {
  tags: ["gpu=true", "zone = a", "edge"],
  location: "lab",
  wasm_runtime: "propeller-inprocess",
  cpu_arch: "x86_64",
  total_memory_bytes: 2 * 1024 ** 3,
  tee: "none",
};

/** As a proplet whose own word is trusted. */
const unmet = (req: Requirements, m: Parameters<typeof unmetBy>[1]) => unmetBy(req, m, SELF_TRUSTED);

describe("requirements", () => {
  test("labels come from key=value tags (a bare tag is true) and the location", () => {
    expect(propletLabels(meta)).toEqual({ gpu: "true", zone: "a", edge: "true", location: "lab" });
  });

  test("what is unmet is named; arch aliases and TEE any are understood", () => {
    expect(
      unmet({ labels: { gpu: "true", location: "lab" }, arch: "amd64", min_memory_mb: 2048 }, meta),
    ).toBeUndefined();
    expect(unmet({ labels: { zone: "b" } }, meta)).toBe("label zone=b (it has zone=a)");
    expect(unmet({ labels: { fpga: "yes" } }, meta)).toBe("label fpga=yes");
    expect(unmet({ runtime: "wasmtime" }, meta)).toBe("runtime wasmtime");
    expect(unmet({ arch: "arm64" }, meta)).toBe("arch arm64");
    expect(unmet({ tee: "any" }, meta)).toBe("TEE any");
    expect(unmet({ tee: "any" }, { ...meta, tee: "sgx" })).toBeUndefined();
    expect(unmet({ tee: "tdx" }, { ...meta, tee: "sgx" })).toBe("TEE tdx");
    expect(unmet({ min_memory_mb: 4096 }, meta)).toBe("at least 4096 MiB of memory");
    expect(describeRequirements({ labels: { gpu: "true" }, tee: "tdx" })).toBe("gpu=true, TEE tdx");
  });

  test("a pinned task runs only on its proplet; any task only where its requirements are met", () => {
    const arm = { id: "p1", metadata: { cpu_arch: "arm64" } };
    const x86 = { id: "p2", metadata: { cpu_arch: "x86_64" } };
    const v = UNVOUCHED;
    expect([canHost({}, arm, v), canHost({}, x86, v)]).toEqual([true, true]);
    expect([
      canHost({ pinned: true, proplet_id: "p1" }, arm, v),
      canHost({ pinned: true, proplet_id: "p1" }, x86, v),
    ]).toEqual([true, false]);
    // proplet_id without pinned only says where it ran last.
    expect(canHost({ proplet_id: "p1" }, x86, v)).toBe(true);
    // Arch is a fact of fit, taken from the proplet's own metadata even when its claims are not trusted.
    const needsArm = { requirements: Requirements.parse({ arch: "aarch64" }) };
    expect([canHost(needsArm, arm, v), canHost(needsArm, x86, v)]).toEqual([true, false]);
  });

  test("labels and a TEE a proplet claims itself count only when trusted; the operator's labels always", () => {
    const claims = { ...meta, tee: "sev" };
    expect(unmetBy({ labels: { gpu: "true" } }, claims, UNVOUCHED)).toBe(
      "label gpu=true (it claims gpu=true itself: self-reported, not trusted: set it on its identity, or serve --trust-proplet-labels)",
    );
    expect(unmetBy({ tee: "sev" }, claims, UNVOUCHED)).toBe(
      "TEE sev (it reports TEE sev itself: self-reported, not trusted: set it on its identity, or serve --trust-proplet-labels)",
    );
    expect(unmetBy({ labels: { fpga: "yes" } }, claims, UNVOUCHED)).toBe("label fpga=yes");
    expect(unmetBy({ labels: { gpu: "true" }, tee: "sev" }, claims, SELF_TRUSTED)).toBeUndefined();
    const operator = { labels: { gpu: "true", tee: "sev" }, self: false };
    expect(unmetBy({ labels: { gpu: "true" }, tee: "any" }, { tee: "none" }, operator)).toBeUndefined();
    // The operator's word wins over the proplet's.
    expect(unmetBy({ labels: { zone: "a" } }, claims, { labels: { zone: "b" }, self: true })).toBe(
      "label zone=a (it claims zone=a, its identity says zone=b)",
    );
  });

  test("unknown keys and bad values are refused, not ignored", () => {
    expect(Requirements.safeParse({ gpu: "true" }).success).toBe(false);
    expect(Requirements.safeParse({ min_memory_mb: 0 }).success).toBe(false);
    expect(Requirements.safeParse({ labels: { gpu: 1 } }).success).toBe(false);
  });
});

describe("SDF", () => {
  test("upstream's document: only the title names the proplet", () => {
    const d = propletSdf({ id: "p-1", name: "edge-1" });
    expect(d.info).toEqual({ title: "Propeller Proplet: edge-1 (p-1)", version: "1.0", license: "Apache-2.0" });
    const thing = d.sdfThing.Proplet;
    expect(Object.keys(thing.sdfProperty)).toEqual(["id", "name", "alive", "task_count", "metadata"]);
    expect(Object.keys(thing.sdfAction)).toEqual(["start_task", "stop_task"]);
    expect(Object.keys(thing.sdfEvent)).toEqual(["heartbeat", "task_result"]);
    expect(thing.sdfData.TaskDispatch.required).toEqual(["id", "name"]);
    expect(thing.sdfData.TaskResult.properties.state.enum).toEqual(["Completed", "Failed", "Skipped", "Interrupted"]);
    expect(JSON.stringify(propletSdf({ id: "x", name: "y" }).sdfThing.Proplet)).toBe(JSON.stringify(thing));
  });
});
