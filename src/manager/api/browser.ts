import type { Context } from "hono";
import { crossSiteChange, type OriginPolicy } from "../../core/origins.ts";
import { CONSOLE_HEADER } from "./auth.ts";

// A page of another site may make a browser send simple requests here (a form post, a no-cors fetch) with
// whatever cookies the browser holds; under `serve --no-auth` it needs none. State changes are refused when they
// may have come that way (core/origins.ts); reads are left to the Host check (cli/http-front.ts) and CORS, never granted.

/** No origin known: every Origin is foreign (the in-process app of the unit tests). */
export const NO_ORIGINS: OriginPolicy = { origins: new Set(), hosts: new Set() };

/** The answer to a change that may have come from another site's page (400 or 403), else undefined. */
export function crossSiteRefusal(policy: () => OriginPolicy): (c: Context) => Response | undefined {
  return (c) => {
    const h = c.req.raw.headers;
    const why = crossSiteChange(policy(), {
      method: c.req.method,
      origin: h.get("origin") ?? undefined,
      fetchSite: h.get("sec-fetch-site") ?? undefined,
      contentType: h.get("content-type") ?? undefined,
      console: h.get(CONSOLE_HEADER) ?? undefined,
    });
    // A form's body type is a bad request as any other wrong media type is; a foreign origin is forbidden.
    if (why) return c.json({ error: why.error }, why.kind === "invalid" ? 400 : 403);
  };
}
