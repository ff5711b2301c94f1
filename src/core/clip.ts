// Errors from outside (a guest's stderr, a proplet's word) cut to a size that can be kept, listed and logged.

/**
 * The longest error kept with a task and its run. A guest's stderr is its error when it exits non-zero: 8 MiB of
 * it was stored, logged twice, and sent whole in every listing and event (a viewer's `GET /events/recent` was
 * 344 MB and stalled serve). Its start and its end are what say why.
 */
export const MAX_ERROR_CHARS = 8192;
const HEAD_CHARS = 1024;

/** `text` within MAX_ERROR_CHARS: its first and last characters, with how many were cut between them. */
export function clipError(text: string): string {
  if (text.length <= MAX_ERROR_CHARS) return text;
  const cut = text.length - MAX_ERROR_CHARS;
  return `${text.slice(0, HEAD_CHARS)}\n[… ${cut} characters cut …]\n${text.slice(text.length - (MAX_ERROR_CHARS - HEAD_CHARS))}`;
}
