// Readiness in words (docs/ARCHITECTURE.md, "Health"): each part a manager needs says whether it can do its work
// now, and why not in general words. The answers go to unauthenticated callers (`/readyz`, `/health`), so a
// reason names no id, address or path; the log has the details.

export interface Check {
  /** `storage`, `broker`, `lease`, … */
  name: string;
  ok: boolean;
  /** Why not, when not ok. */
  reason?: string;
}

export interface Verdict {
  status: "pass" | "fail";
  checks: { name: string; status: "pass" | "fail"; reason?: string }[];
  /** The failing checks' reasons, in order; empty when ready. */
  reasons: string[];
}

export function verdict(checks: Check[]): Verdict {
  const reasons = checks.filter((c) => !c.ok).map((c) => c.reason ?? `${c.name} is not ready`);
  return {
    status: reasons.length ? "fail" : "pass",
    checks: checks.map((c) => ({
      name: c.name,
      status: c.ok ? "pass" : "fail",
      ...(c.ok ? {} : { reason: c.reason ?? `${c.name} is not ready` }),
    })),
    reasons,
  };
}
