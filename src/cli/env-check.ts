import { envRefusals, envWarnings } from "../core/env-names.ts";
import { log } from "../log.ts";
import { UsageError } from "./args.ts";

/**
 * Says at start which variables of the environment look like propeller's and are none (core/env-names.ts);
 * refuses the start when one is a near miss of a setting that protects (a trust policy, TLS, limits).
 */
export function warnUnknownEnv(): void {
  const names = Object.keys(process.env);
  const refused = envRefusals(names);
  if (refused.length)
    throw new UsageError(
      `${refused.join("; ")}: refused, as it would run without the protection that setting gives; fix its name or unset it`,
    );
  for (const w of envWarnings(names)) log.warn(`environment: ${w}`);
}
