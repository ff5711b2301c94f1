import { Lru } from "../core/lru.ts";
import { parseChallenge, type Reference, registryListed, registryScheme } from "../core/oci.ts";
import {
  type FollowOptions,
  fetchFollowing,
  leadsInward,
  RegistryError,
  type Resolve,
  readBounded,
  unreachable,
} from "./http.ts";

// Registry authentication: anonymous, basic, a static bearer token, and the bearer token challenge. The
// credentials go only to the hosts they were configured for (as docker's `auths`): a reference to another
// registry gets none, and a token service (a challenge's realm) on another host is asked anonymously.

export interface Credentials {
  username?: string;
  password?: string;
  /** A bearer token used as is. */
  token?: string;
  /**
   * The registries (host[:port], lowercase) these credentials are for, as docker's `auths` keys: they go to no
   * other host, and to a token service (a bearer realm) only on one of these hosts.
   */
  hosts: string[];
}

/** Tokens kept: bounded, whatever the proplets ask for. */
const MAX_TOKENS = 1024;

export class RegistryAuth {
  private tokens = new Lru<string, string>(MAX_TOKENS);

  constructor(
    private o: {
      credentials?: Credentials;
      insecure: string[];
      /** The bounds and the resolver of every request (http.ts). */
      follow: FollowOptions;
    },
  ) {}

  private authKey(ref: Reference, write: boolean): string {
    return `${ref.registry}/${ref.repository}/${write ? "push" : "pull"}`;
  }

  /** The credentials, if `host` is one they are for. */
  private credsFor(host: string): Credentials | undefined {
    const c = this.o.credentials;
    return c && registryListed(c.hosts, host) ? c : undefined;
  }

  private basic(host: string): string | undefined {
    const c = this.credsFor(host);
    return c?.username !== undefined ? `Basic ${btoa(`${c.username}:${c.password ?? ""}`)}` : undefined;
  }

  /** One request, answering an auth challenge once. */
  async request(ref: Reference, url: string, init: RequestInit = {}, write = false): Promise<Response> {
    const key = this.authKey(ref, write);
    const headers = new Headers(init.headers);
    const token = this.credsFor(ref.registry)?.token;
    const known = this.tokens.get(key) ?? (token ? `Bearer ${token}` : undefined);
    if (known) headers.set("authorization", known);
    const send = async () => {
      try {
        return await fetchFollowing(url, { ...init, headers }, this.o.follow);
      } catch (e) {
        throw unreachable(ref.registry, e);
      }
    };
    let res = await send();
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
    await res.body?.cancel().catch(() => {});
    let auth: string | undefined;
    if (challenge.scheme === "basic") auth = this.basic(ref.registry);
    else if (challenge.scheme === "bearer" && challenge.params.realm)
      auth = await this.bearer(ref, challenge.params, write);
    if (!auth)
      throw new RegistryError(
        `registry ${ref.registry} asks for ${challenge.scheme || "authentication"}: give --username/--password or PROPELLER_REGISTRY_TOKEN, for this host (PROPELLER_REGISTRY_AUTH_HOSTS)`,
        "the registry asks for credentials this proxy has none for",
      );
    this.tokens.set(key, auth);
    headers.set("authorization", auth);
    res = await send();
    if (res.status === 401) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryError(
        `registry ${ref.registry} refused the credentials (401)`,
        "the registry refused the credentials (401)",
      );
    }
    return res;
  }

  /**
   * A token from the challenge's realm. The credentials go there only if its host is one they are for, and not
   * in the clear to a host that is neither loopback nor listed as insecure; else the token is asked for
   * anonymously (public registries give pull tokens so).
   */
  private async bearer(ref: Reference, p: Record<string, string>, write: boolean): Promise<string> {
    let u: URL;
    try {
      u = new URL(p.realm!);
    } catch {
      throw new RegistryError(
        `registry ${ref.registry}: bearer realm ${JSON.stringify(p.realm)} is not a URL`,
        "bad bearer realm",
      );
    }
    if (u.protocol !== "https:" && u.protocol !== "http:")
      throw new RegistryError(`registry ${ref.registry}: bearer realm ${u.protocol} refused`, "bad bearer realm");
    await realmAllowed(ref.registry, u, this.o.follow.resolve);
    if (p.service) u.searchParams.set("service", p.service);
    u.searchParams.set("scope", p.scope ?? `repository:${ref.repository}:${write ? "pull,push" : "pull"}`);
    const clear = u.protocol === "http:" && registryScheme(u.host, this.o.insecure ?? []) !== "http";
    const basic = clear ? undefined : this.basic(u.host);
    const headers = new Headers(basic ? { authorization: basic } : {});
    let res: Response;
    try {
      res = await fetchFollowing(u.href, { headers }, this.o.follow);
    } catch (e) {
      throw unreachable(u.host, e);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryError(
        `token service ${u.origin} answered ${res.status}`,
        `the token service answered HTTP ${res.status}`,
      );
    }
    let body: { token?: string; access_token?: string };
    try {
      body = JSON.parse(new TextDecoder().decode(await readBounded(res, 64 << 10, "token")));
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(`token service ${u.origin} answered no JSON`, "the token service answered no JSON");
    }
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || !token)
      throw new RegistryError(`token service ${u.origin} returned no token`, "the token service returned no token");
    return `Bearer ${token}`;
  }
}

/**
 * A realm is a URL the registry chooses, fetched by the proxy with a path, query and `scope` of its choosing, and
 * the `token` of the answer sent back to it: one inside the gateway's machine or network (a local admin port, a
 * cloud's metadata service) is refused as a redirect there is, unless the registry is there itself.
 */
export async function realmAllowed(registry: string, realm: URL, resolve?: Resolve): Promise<void> {
  const home = new URL(`http://${registry}`).hostname;
  if ((await leadsInward(realm.hostname, resolve)) && !(await leadsInward(home, resolve)))
    throw new RegistryError(
      `registry ${registry}: bearer realm ${realm.host} refused: an address inside`,
      "bad bearer realm: an address inside",
    );
}
