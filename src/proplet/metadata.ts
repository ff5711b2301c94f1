import { existsSync } from "node:fs";
import { arch, hostname, platform, totalmem } from "node:os";
import type { PropletMetadata } from "../core/proplet.ts";
import type { PropletConfig } from "./config.ts";

export const PROPLET_VERSION = "0.1.0";

const ARCH: Record<string, string> = { x64: "x86_64", arm64: "aarch64", arm: "arm", ia32: "x86" };

/** Discovery metadata with upstream's keys. */
export function discoveryMetadata(cfg: PropletConfig, runtime: string): PropletMetadata {
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
  };
}
