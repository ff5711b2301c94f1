import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PUBLIC_PROBES } from "../../../src/manager/api/health.ts";
import { ROOT } from "../../helpers.ts";

// The Kubernetes manifests cannot be applied here (no cluster); what can be checked is that they parse, are the
// kinds they say, and set only settings the binary reads (a renamed variable would otherwise go unnoticed).

const docs = (file: string) =>
  [Bun.YAML.parse(readFileSync(join(ROOT, "deploy", "kubernetes", file), "utf8"))].flat() as {
    kind: string;
    spec: { template?: { spec: { containers: { args: string[]; env: { name: string }[] }[] } } };
  }[];
const sources = [
  "src/cli/serve.ts",
  "src/cli/serve-flags.ts",
  "src/cli/serve-options.ts",
  "src/cli/proplet.ts",
  "src/cli/args.ts",
  "src/log.ts",
]
  .map((f) => readFileSync(join(ROOT, f), "utf8"))
  .join("\n");

describe("deploy/kubernetes", () => {
  test("serve is a StatefulSet and the proplets a DaemonSet, each running a subcommand of the binary", () => {
    expect(docs("serve.yaml").map((d) => d.kind)).toEqual(["Namespace", "Service", "StatefulSet"]);
    expect(docs("proplet.yaml").map((d) => d.kind)).toEqual(["DaemonSet"]);
    expect(docs("serve.yaml")[2]!.spec.template!.spec.containers[0]!.args[0]).toBe("serve");
    expect(docs("proplet.yaml")[0]!.spec.template!.spec.containers[0]!.args[0]).toBe("proplet");
  });

  test("serve's probes: readiness on /readyz, liveness on /livez (a broker outage must not restart the pod)", () => {
    const c = (docs("serve.yaml")[2]!.spec.template!.spec.containers[0] as unknown as Record<string, any>)!;
    expect(c.readinessProbe.httpGet.path).toBe("/readyz");
    expect(c.livenessProbe.httpGet.path).toBe("/livez");
    for (const p of ["/readyz", "/livez"]) expect(PUBLIC_PROBES.has(p)).toBe(true);
  });

  test("every PROPELLER_/PROPLET_ variable they set is one the binary reads", () => {
    for (const file of ["serve.yaml", "proplet.yaml"]) {
      for (const d of docs(file)) {
        for (const c of d.spec?.template?.spec.containers ?? []) {
          for (const { name } of c.env) {
            if (/^(PROPELLER|PROPLET)_/.test(name))
              expect(`${file}: ${name} ${sources.includes(name)}`).toBe(`${file}: ${name} true`);
          }
        }
      }
    }
  });
});
