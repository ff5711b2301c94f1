// Who a browser request comes from, judged against serve's own configuration only (docs/ARCHITECTURE.md,
// "Browsers and --no-auth"): the names serve answers to (Host) and the origins that may send it changes and open
// `/mqtt` (Origin). Never against the request's own Host: a DNS-rebinding page sets both.

/** The names a loopback listener is reached by, as they appear in a URL's host. */
export const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]", ""]);

/**
 * The body types a POST may carry: what the API reads (JSON, YAML for jobs and workflows, CBOR for FL updates), none
 * of which a page of another site may send without a CORS preflight. A form's (`application/x-www-form-urlencoded`,
 * `multipart/form-data`, `text/plain`) and a hyperlink ping's (`text/ping`) are refused, as anything else.
 */
const POST_TYPES = new Set([
  "",
  "application/json",
  "application/yaml",
  "application/x-yaml",
  "text/yaml",
  "application/cbor",
  "application/cbor-seq",
]);
/** Methods a page of another site can send without a preflight; every other change needs one, never granted. */
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

/** `scheme://host[:port]` in its canonical form (lower case, default port left out), or undefined if it is not one. */
export function parseOrigin(text: string): string | undefined {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return undefined;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
  // Only an origin: no path, query, fragment or credentials (a trailing "/" is how URL prints an empty path).
  if (u.username || u.password || u.search || u.hash || u.pathname !== "/") return undefined;
  if (!/^https?:\/\/[^/?#]+\/?$/i.test(text)) return undefined;
  return u.origin;
}

export interface OriginPolicy {
  /** Origins that may send changes and open `/mqtt`: serve's own and the configured ones. */
  origins: ReadonlySet<string>;
  /** Host headers serve answers to under `--no-auth`, in `URL.host` form. */
  hosts: ReadonlySet<string>;
}

export interface SiteAddress {
  /** HTTPS (serve's --tls-cert) or HTTP. */
  tls: boolean;
  /** serve's --host. */
  host: string;
  /** The port HTTP listens on. */
  port: number;
  /** --allowed-origins, each already canonical (parseOrigin). */
  allowedOrigins: readonly string[];
  /** --advertise-url: where other managers reach this one. */
  advertiseUrl?: string;
}

/**
 * serve's own origins: each name it answers to on loopback (when it listens there or on every address) and its
 * --host, with its scheme and port; the advertised URL's; and the configured ones. With `--host 0.0.0.0` the other
 * addresses of the machine are not guessed: a browser reaching serve by one gives it in --allowed-origins.
 */
export function originPolicy(a: SiteAddress): OriginPolicy {
  const scheme = a.tls ? "https" : "http";
  const bare = a.host.replace(/^\[(.*)\]$/, "$1");
  const names = new Set<string>();
  if (LOOPBACK_HOSTS.has(bare) || WILDCARD_HOSTS.has(bare)) for (const n of LOOPBACK_NAMES) names.add(n);
  if (!WILDCARD_HOSTS.has(bare)) names.add(bare.includes(":") ? `[${bare}]` : bare);
  const origins = new Set<string>();
  for (const n of names) {
    const o = parseOrigin(`${scheme}://${n}:${a.port}`);
    if (o) origins.add(o);
  }
  const advertised =
    a.advertiseUrl && URL.canParse(a.advertiseUrl) ? parseOrigin(new URL(a.advertiseUrl).origin) : undefined;
  if (advertised) origins.add(advertised);
  for (const o of a.allowedOrigins) origins.add(o);
  return { origins, hosts: new Set([...origins].map((o) => new URL(o).host)) };
}

/**
 * True when a Host header names serve as configured: a page on another name that DNS rebinding pointed at
 * 127.0.0.1 sends its own name, which is not here. The port counts, written or implied by either scheme.
 */
export function hostAllowed(p: OriginPolicy, host: string | null | undefined): boolean {
  if (!host || !/^[A-Za-z0-9.:[\]-]{1,300}$/.test(host)) return false;
  for (const scheme of ["http", "https"]) {
    try {
      if (p.hosts.has(new URL(`${scheme}://${host}`).host)) return true;
    } catch {}
  }
  return false;
}

/** Why a request was refused by hostAllowed (421 Misdirected Request), with what to do. */
export function hostRefusal(host: string | null | undefined): string {
  const h = JSON.stringify((host ?? "").slice(0, 100));
  return (
    `host ${h} is not a name this serve answers to without authentication: use localhost, 127.0.0.1 or [::1] ` +
    "with its port, its --host, or add the origin to --allowed-origins"
  );
}

/** True when an Origin header is serve's own or configured. */
export const originAllowed = (p: OriginPolicy, origin: string): boolean => {
  const o = parseOrigin(origin);
  return o !== undefined && p.origins.has(o);
};

export interface ChangeRequest {
  method: string;
  origin?: string | null;
  /** Sec-Fetch-Site, which browsers send beside Origin. */
  fetchSite?: string | null;
  contentType?: string | null;
  /** The console's header (`x-propeller-console`, src/manager/api/auth.ts). */
  console?: string | null;
}

/**
 * Why a state change may have come from another site's page (a form post, a no-cors fetch), or undefined when it
 * cannot have. Reads pass. A change passes when it carries the console's header (a page elsewhere cannot add it
 * without a preflight, which serve never grants); otherwise it is refused when a browser says it comes from an
 * origin serve does not know, and a POST is refused unless its body is of a type only a preflight lets a page
 * send. A client outside a browser (the CLI, curl, upstream's CLI) sends no Origin and a JSON body or none.
 */
export function crossSiteChange(
  p: OriginPolicy,
  r: ChangeRequest,
): { kind: "forbidden" | "invalid"; error: string } | undefined {
  if (READS.has(r.method.toUpperCase())) return undefined;
  if (r.console === "1") return undefined;
  if (r.origin && !originAllowed(p, r.origin)) {
    const error = `a change from origin ${r.origin.slice(0, 200)} is refused: it is not serve's own, nor in --allowed-origins`;
    return { kind: "forbidden", error };
  }
  const site = r.fetchSite?.toLowerCase();
  if (!r.origin && (site === "cross-site" || site === "same-site")) {
    return { kind: "forbidden", error: `a change from another site (Sec-Fetch-Site: ${site}) is refused` };
  }
  const type = (r.contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (r.method.toUpperCase() === "POST" && !POST_TYPES.has(type)) {
    const error = `Content-Type must be application/json (YAML or CBOR where a route reads them), or none on a POST (a form of another site sends the others): got ${type.slice(0, 100)}`;
    return { kind: "invalid", error };
  }
  return undefined;
}
