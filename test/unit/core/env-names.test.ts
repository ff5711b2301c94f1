import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ENV_NAMES, envRefusals, envWarnings } from "../../../src/core/env-names.ts";
import { ROOT } from "../../helpers.ts";

// `PROPELLER_HTTP_PROT=8080 propeller serve` listened on the default port and said nothing.

/** Names in the sources that look like variables and are not: constants, build-time values, guests' variables. */
const NOT_READ = new Set([
  "PROPELLER_BUILD_TIME",
  "PROPELLER_COMMIT",
  "PROPELLER_TASK_ID",
  "PROPELLER_RUN_ID",
  "PROPELLER_ATTEMPT",
  "PROPLET_ID",
  "PROPLET_ID_KEY",
  "PROPLET_VERSION",
  "PROPLET_ROUTES",
  "PROPLET_ENV_ONLY",
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

test("every PROPELLER_/PROPLET_/PROXY_ name in the sources is in the list, and every listed name is in the sources", () => {
  const found = new Set<string>();
  for (const f of sources(join(ROOT, "src"))) {
    if (f.endsWith("env-names.ts")) continue;
    for (const m of readFileSync(f, "utf8").matchAll(/\b(?:PROPELLER|PROPLET|PROXY)_[A-Z0-9_]*[A-Z0-9]\b/g))
      found.add(m[0]);
  }
  const unlisted = [...found].filter((n) => !ENV_NAMES.has(n) && !NOT_READ.has(n));
  expect(unlisted).toEqual([]);
  const unused = [...ENV_NAMES].filter((n) => !found.has(n));
  expect(unused).toEqual([]);
});

test("a misspelt name is named with the one meant; upstream's own and a task's variables are said so; others pass", () => {
  const w = envWarnings([
    "PATH",
    "HOME",
    "PROPELLER_HTTP_PORT",
    "PROPELLER_HTTP_PROT",
    "PROPLET_MQTT_ADRESS",
    "PROPELLER_WHATEVER_ELSE",
    "PROPLET_HAL_ENABLED",
    "PROPELLER_TASK_ID",
    "PROXY_ENTITY_ID",
    "PROXY_ENTITY_DI",
    "PROXY_SERVER",
  ]);
  expect(w).toEqual([
    "PROPELLER_HTTP_PROT is not a setting propeller reads: ignored (did you mean PROPELLER_HTTP_PORT?)",
    "PROPELLER_TASK_ID is set in a task's environment by propeller; in propeller's own it means nothing",
    "PROPELLER_WHATEVER_ELSE is not a setting propeller reads: ignored",
    "PROPLET_HAL_ENABLED is a setting of upstream's proplet or proxy that this one does not read: ignored",
    "PROPLET_MQTT_ADRESS is not a setting propeller reads: ignored (did you mean PROPLET_MQTT_ADDRESS?)",
    "PROXY_ENTITY_DI is not a setting propeller reads: ignored (did you mean PROXY_ENTITY_ID?)",
  ]);
  // Bounded: a huge made-up name is not compared.
  expect(envWarnings([`PROPELLER_${"X".repeat(5000)}`])).toEqual([]);
});

test("a near miss of a setting that protects is a refusal, others are warnings only", () => {
  expect(
    envRefusals(["PROPLET_TRUST_POLCY", "PROPELLER_TLS_CRT", "PROPELLER_HTTP_PROT", "PROPLET_TRUST_POLICY"]),
  ).toEqual([
    "PROPELLER_TLS_CRT is not a setting propeller reads (did you mean PROPELLER_TLS_CERT?)",
    "PROPLET_TRUST_POLCY is not a setting propeller reads (did you mean PROPLET_TRUST_POLICY?)",
  ]);
});
