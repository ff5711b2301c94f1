import { pbkdf2Sync, randomBytes } from "node:crypto";
import type { EntityKind } from "./identity.ts";
import { type Channel, topics } from "./topics.ts";

// Upstream's provisioning file, config.toml, and the files a real mosquitto needs to apply the same rules as the
// embedded broker. Pure text in, text out (the random salt apart): the CLI reads and writes the files.

/** One identity as config.toml holds it (upstream's keys). */
export interface ConfigSection {
  tenant_id: string;
  entity_id: string;
  api_key: string;
  channel_id: string;
}

const HEADER = `# Propeller configuration, written by \`propeller provision\`.
# Each identity logs in to MQTT with its entity_id as username and its api_key as password.
`;

function section(name: string, s: ConfigSection): string {
  const q = (v: string) => JSON.stringify(v); // a TOML basic string is a JSON string for these characters
  return `[${name}]\ntenant_id = ${q(s.tenant_id)}\nentity_id = ${q(s.entity_id)}\napi_key = ${q(s.api_key)}\nchannel_id = ${q(s.channel_id)}\n`;
}

/** The whole file: `[manager]`, then `[proplet]` (one) or `[proplet1]`…`[propletN]`, then `[proxy]`, as upstream. */
export function renderConfig(manager: ConfigSection, proplets: ConfigSection[], proxy: ConfigSection): string {
  const names = proplets.length === 1 ? ["proplet"] : proplets.map((_, i) => `proplet${i + 1}`);
  const parts = [
    section("manager", manager),
    ...proplets.map((p, i) => section(names[i]!, p)),
    section("proxy", proxy),
  ];
  return `${HEADER}\n${parts.join("\n")}`;
}

/** The highest proplet section number in the file: `[propletK]`, or 1 for a lone `[proplet]`. */
export function propletCount(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/^\[proplet(\d*)\]\s*$/gm)) n = Math.max(n, m[1] ? Number(m[1]) : 1);
  return n;
}

/** Adds `[proplet<k>]` sections after the last one, before `[proxy]` (or at the end), as upstream. */
export function addProplets(text: string, proplets: ConfigSection[]): string {
  const first = propletCount(text) + 1;
  const added = proplets.map((p, i) => section(`proplet${first + i}`, p)).join("\n");
  const at = text.search(/^\[proxy\]\s*$/m);
  if (at < 0) return `${text.trimEnd()}\n\n${added}`;
  return `${text.slice(0, at)}${added}\n${text.slice(at)}`;
}

/** Replaces the `[proxy]` block (to the next section or the end) with a new one. */
export function replaceProxy(text: string, proxy: ConfigSection): string {
  const without = text.replace(/^\[proxy\]\s*$[\s\S]*?(?=^\[|(?![\s\S]))/m, "");
  return `${without.trimEnd()}\n\n${section("proxy", proxy)}`;
}

/**
 * A mosquitto 2 password-file line: PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte salt, as `mosquitto_passwd`
 * writes it (`$7$`).
 */
export function mosquittoPassword(user: string, password: string, salt = randomBytes(12)): string {
  const hash = pbkdf2Sync(password, salt, 101, 64, "sha512");
  return `${user}:$7$101$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** A mosquitto ACL block for one identity: the same topics the embedded broker allows its kind (core/acl.ts). */
export function mosquittoAcl(user: string, kind: EntityKind, channel: Channel): string {
  const t = topics(channel);
  const rules: Record<EntityKind, [string, string][]> = {
    manager: [
      ["read", t.propletAll],
      ["write", t.start],
      ["write", t.stop],
    ],
    proxy: [
      ["read", t.registryRequest],
      ["write", t.registryChunks],
    ],
    proplet: [
      ["read", t.start],
      ["read", t.stop],
      ["read", t.registryChunks],
      ...[t.create, t.alive, t.results, t.metrics, t.taskMetrics, t.registryRequest].map((topic): [string, string] => [
        "write",
        topic,
      ]),
    ],
  };
  return `user ${user}\n${rules[kind].map(([access, topic]) => `topic ${access} ${topic}`).join("\n")}\n`;
}
