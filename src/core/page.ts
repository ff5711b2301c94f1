import { z } from "zod";

const uint = (name: string, dflt: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return dflt;
      if (!/^\d+$/.test(v)) {
        ctx.addIssue({ code: "custom", message: `${name} must be a non-negative integer` });
        return z.NEVER;
      }
      return Number(v);
    });

/** `?offset&limit` as upstream: offset default 0, limit default 100 (1..100 for tasks). */
export const PageQuery = z.object({
  offset: uint("offset", 0),
  limit: uint("limit", 100).pipe(z.number().int().min(1, "limit must be 1..1000").max(1000, "limit must be 1..1000")),
});
export type PageQuery = z.output<typeof PageQuery>;

/** One page of a listing. */
export interface Page<T> {
  offset: number;
  limit: number;
  total: number;
  items: T[];
}
