// The cap on a task's module (issue 25): a module is instrumented and compiled whole, in memory, so its size bounds
// what one task may cost a proplet before it runs. The manager refuses an inline `file` over its cap; a proplet
// refuses a module over its own, however it came (inline, http, OCI chunks), failing the task with the reason.

const MiB = 1024 * 1024;

/** A module's cap unless set (`serve --max-module-mb`, `PROPLET_MAX_MODULE_MB`): inline, base64, it fits a request. */
export const DEFAULT_MAX_MODULE_MB = 64;
/** The highest cap that may be set: JavaScript engines refuse to compile modules past about 1 GiB. */
export const MAX_MODULE_MB_LIMIT = 1024;

/** Bytes a standard base64 text decodes to (its length alone: nothing is decoded). */
export function base64Bytes(text: string): number {
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return Math.max(0, Math.floor((text.length * 3) / 4) - pad);
}

/** Why a module of `bytes` is refused under a cap of `maxMb` MiB set by `setting`, or undefined when it fits. */
export function moduleTooLarge(bytes: number, maxMb: number, setting: string): string | undefined {
  if (bytes <= maxMb * MiB) return undefined;
  return `the module is ${(bytes / MiB).toFixed(1)} MiB, over the limit of ${maxMb} MiB (${setting})`;
}
