import { canonicalReference } from "../core/oci.ts";

// What the manager sent proplets to fetch: each start message that names an OCI `image_url` lets that proplet
// (and, for a request whose sender no broker vouches for, any proplet) ask the proxy for that reference for a
// while. Bounded: the oldest grants go first past `max`.

const DAY_MS = 86_400_000;

export class Dispatched {
  /** `proplet\nref` and `\nref` (any proplet) → when the grant ends. Insertion order is age order. */
  private grants = new Map<string, number>();

  constructor(
    private ttlMs = DAY_MS,
    private max = 20_000,
  ) {}

  /** A start for `propletId` named `imageUrl` (http(s) URLs are fetched by the proplet itself: nothing to grant). */
  record(imageUrl: string | undefined, propletId: string | undefined, now = Date.now()): void {
    if (!imageUrl || /^https?:\/\//i.test(imageUrl)) return;
    const ref = canonicalReference(imageUrl);
    if (!ref) return;
    for (const key of [`\n${ref}`, ...(propletId ? [`${propletId}\n${ref}`] : [])]) {
      this.grants.delete(key);
      this.grants.set(key, now + this.ttlMs);
      if (this.grants.size > this.max) this.grants.delete(this.grants.keys().next().value!);
    }
  }

  /** Whether `ref` (canonical) was dispatched to `propletId`, or to any proplet when the asker is unknown. */
  allows(ref: string, propletId: string | undefined, now = Date.now()): boolean {
    const until = this.grants.get(`${propletId ?? ""}\n${ref}`);
    return until !== undefined && until > now;
  }
}
