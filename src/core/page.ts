import { z } from "zod";

/** Digits only, and a safe integer within bounds: `1e20`, `-1` and 10^20 are refused naming the field. */
const uint = (name: string, dflt: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return dflt;
      const n = /^\d{1,16}$/.test(v) ? Number(v) : Number.NaN;
      if (!(n >= min && n <= max)) {
        ctx.addIssue({ code: "custom", message: `${name} must be a whole number from ${min} to ${max}` });
        return z.NEVER;
      }
      return n;
    });

/** A yes/no query parameter (`?force=true`, `?follow=1`): true, false, 1 or 0; absent is no. */
export const QueryFlag = z
  .enum(["true", "false", "1", "0"])
  .optional()
  .transform((v) => v === "true" || v === "1");

/** The largest offset: a safe integer, which every backend stores exactly (SQLite refused 10^20 with a 500). */
export const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

/** `?offset&limit` as upstream: offset default 0, limit default 100 (1..1000). */
export const PageQuery = z.object({
  offset: uint("offset", 0, 0, MAX_OFFSET),
  limit: uint("limit", 100, 1, 1000),
});
export type PageQuery = z.output<typeof PageQuery>;

/** One page of a listing. */
export interface Page<T> {
  offset: number;
  limit: number;
  total: number;
  items: T[];
}
