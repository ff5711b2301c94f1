import type { TrustCheck, TrustGate } from "../core/trust-policy.ts";
import { tag } from "../log.ts";
import type { RegistryClient } from "./registry.ts";
import { TrustVerifier } from "./trust.ts";

const log = tag("trust");

// The trust policy a SIGHUP can replace (serve, a proplet, the proxy alone): every check goes to the verifier of
// the moment; a reload reads the files again into a new verifier (its decisions cache empty, so the new policy
// judges from the next check on) and swaps it in only when it loads whole. A file that does not parse, a key that
// cannot be read: the running policy stays, and the log says why. Refusals are counted here, across reloads.

export class ReloadableTrust implements TrustGate {
  /** Refusals by rule since start, for `/metrics` (a reload does not reset them). */
  readonly refusals = new Map<string, number>();
  /** The number of the newest reload begun. */
  private generation = 0;

  private constructor(
    private current: TrustVerifier,
    private policyPath: string,
    private registriesD: string,
    private registry?: RegistryClient,
  ) {}

  /** The policy loaded, or TrustConfigError naming the fault (the caller stops with it). */
  static async load(policyPath: string, registriesD: string, registry?: RegistryClient): Promise<ReloadableTrust> {
    const verifier = await TrustVerifier.load(policyPath, registriesD, registry);
    // Said at start as on a reload: an operator sees the policy is on (it was said only after a SIGHUP).
    log.info(`policy ${policyPath} in force (signatures as ${registriesD} says): only modules it accepts run`);
    return new ReloadableTrust(verifier, policyPath, registriesD, registry);
  }

  /** The verifier checks go to now. */
  get verifier(): TrustVerifier {
    return this.current;
  }

  async image(ref: string): Promise<TrustCheck> {
    return this.counted(await this.current.image(ref));
  }

  async inline(module: Uint8Array, signature?: Uint8Array): Promise<TrustCheck> {
    return this.counted(await this.current.inline(module, signature));
  }

  /**
   * Reads the policy (at `policyPath`, default the current one) and registries.d again; true when it replaced the
   * running one, false when that was kept (logged as an error with the reason).
   */
  async reload(policyPath = this.policyPath, registriesD = this.registriesD): Promise<boolean> {
    // Loads run concurrently (a key file takes a while to parse): only the newest SIGHUP's may swap in, or an older
    // file read before an edit (a revoked key, an open default) could finish last and silently win.
    const generation = ++this.generation;
    try {
      const next = await TrustVerifier.load(policyPath, registriesD, this.registry);
      if (generation !== this.generation) {
        log.info(`SIGHUP: trust policy ${policyPath} as read earlier not put in force: a newer SIGHUP read it again`);
        return false;
      }
      this.current = next;
      this.policyPath = policyPath;
      this.registriesD = registriesD;
      log.info(`SIGHUP: trust policy ${policyPath} reloaded (registries.d ${registriesD})`);
      return true;
    } catch (e) {
      log.error(
        `SIGHUP: trust policy not reloaded, the running one (${this.policyPath}) is kept: ${e instanceof Error ? e.message : e}`,
      );
      return false;
    }
  }

  private counted(c: TrustCheck): TrustCheck {
    if (!c.allowed) this.refusals.set(c.rule, (this.refusals.get(c.rule) ?? 0) + 1);
    return c;
  }
}
