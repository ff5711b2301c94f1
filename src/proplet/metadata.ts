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
let tee: Tee | undefined;

/** Discovery metadata with upstream's keys, and ours: `tee` (a type or `none`). */
export function discoveryMetadata(cfg: PropletConfig, runtime: string): PropletMetadata {
  if (!tee) {
    tee = detectTee(cfg.teeRoot ?? "/");
    if (tee.type !== "none") log.info(`TEE detected: ${tee.type} (${tee.evidence})`);
  }
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
    tee: tee.type,
  };
}
