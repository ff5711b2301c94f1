import { existsSync } from "node:fs";
import { arch, hostname, platform, totalmem } from "node:os";
import type { PropletMetadata } from "../core/proplet.ts";
import { tag } from "../log.ts";
import type { PropletConfig } from "./config.ts";
import { detectTee, type Tee } from "./tee.ts";

const log = tag("proplet");

export const PROPLET_VERSION = "0.1.0";

const ARCH: Record<string, string> = { x64: "x86_64", arm64: "aarch64", arm: "arm", ia32: "x86" };

/** What TEE detection found, once per process (the hardware does not change while it runs). */
let tee: Promise<Tee> | undefined;

/** Starts TEE detection (once); the agent calls it before connecting, so it overlaps the connect. */
export function teeOf(cfg: PropletConfig): Promise<Tee> {
  tee ??= detectTee(cfg.teeRoot ?? "/").then((t) => {
    if (t.type !== "none") log.info(`TEE detected: ${t.type} (${t.evidence})`);
    return t;
  });
  return tee;
}

/** Discovery metadata with upstream's keys, and ours: `tee` (a type or `none`). */
export async function discoveryMetadata(cfg: PropletConfig, runtime: string): Promise<PropletMetadata> {
  const found = await teeOf(cfg);
  return {
    ...(cfg.description ? { description: cfg.description } : {}),
    ...(cfg.tags?.length ? { tags: cfg.tags } : {}),
    ...(cfg.location ? { location: cfg.location } : {}),
    environment: existsSync("/.dockerenv") ? "docker" : "binary",
    os: platform(),
    hostname: hostname(),
    cpu_arch: ARCH[arch()] ?? arch(),
    total_memory_bytes: totalmem(),
    proplet_version: PROPLET_VERSION,
    wasm_runtime: runtime,
    tee: found.type,
  };
}
