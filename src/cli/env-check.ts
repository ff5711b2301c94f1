import { envWarnings } from "../core/env-names.ts";
import { log } from "../log.ts";

/** Says at start which variables of the environment look like propeller's and are none (core/env-names.ts). */
export function warnUnknownEnv(): void {
  for (const w of envWarnings(Object.keys(process.env))) log.warn(`environment: ${w}`);
}
