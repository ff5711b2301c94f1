import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { defineCommand } from "citty";
import type { EntityKind } from "../core/identity.ts";
import { type JoinMqtt, joinedMqttAddress } from "../core/join.ts";
import {
  addProplets,
  type ConfigSection,
  mosquittoAcl,
  mosquittoPassword,
  propletCount,
  renderConfig,
  replaceProxy,
} from "../core/provision.ts";
import { action, int, UsageError } from "./args.ts";
import { api, type Conn, urlArg } from "./client.ts";
import { parseToml } from "./toml.ts";

// `propeller provision`: the manager, proplet and proxy identities of a site, made through `serve` and written to
// upstream's config.toml, so an upstream proplet and ours start from the same file. Non-interactive (upstream's
// is a form against its identity service). With --mosquitto DIR it also writes a password file and an ACL for a
// real mosquitto that should apply the same rules as the embedded broker.

interface Created {
  id: string;
  api_key: string;
  domain_id: string;
  channel_id: string;
  /** Where serve's broker listens (a serve from before this was said leaves it out). */
  mqtt?: JoinMqtt;
}

type Made = ConfigSection & { kind: EntityKind; broker?: string };

async function create(conn: Conn, kind: EntityKind): Promise<Made> {
  const e = await api<Created>(conn, "POST", "/entities", { kind });
  const broker = e.mqtt ? joinedMqttAddress(e.mqtt, conn.url) : undefined;
  return { kind, tenant_id: e.domain_id, entity_id: e.id, api_key: e.api_key, channel_id: e.channel_id, broker };
}

/**
 * How a proplet starts from the file: config.toml holds upstream's keys only (no broker address), so a serve on
 * another MQTT port than the proplet's default (mqtt://localhost:1883) left its proplets knocking on the wrong one.
 */
function startLine(file: string, section: string, broker: string | undefined): string {
  const address = broker ? ` PROPLET_MQTT_ADDRESS=${broker}` : "";
  const note = broker
    ? ` (from another machine, the gateway's address as it sees it in place of ${new URL(broker).hostname})`
    : "";
  return `A proplet starts from it with${note}:\n  PROPLET_CONFIG_FILE=${file} PROPLET_CONFIG_SECTION=${section}${address} propeller proplet\n`;
}

/** Docker leaves an empty directory where a bind-mounted file did not exist: such a directory gives way. */
function clearPath(path: string): void {
  if (!existsSync(path) || !statSync(path).isDirectory()) return;
  if (readdirSync(path).length > 0) throw new UsageError(`${path} is a directory that is not empty`);
  rmdirSync(path);
}

/** Writes atomically (a temporary file renamed over it), readable by its owner only: it holds API keys. */
function writeSecret(path: string, text: string): void {
  clearPath(path);
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Adds the identities to DIR/passwd and DIR/acl for mosquitto (`password_file` and `acl_file`). */
function writeMosquitto(dir: string, ids: (ConfigSection & { kind: EntityKind })[], fresh: boolean): void {
  mkdirSync(dir, { recursive: true });
  const passwd = ids.map((i) => mosquittoPassword(i.entity_id, i.api_key)).join("\n");
  const acl = ids
    .map((i) => mosquittoAcl(i.entity_id, i.kind, { domainId: i.tenant_id, channelId: i.channel_id }))
    .join("\n");
  if (fresh) {
    writeSecret(join(dir, "passwd"), `${passwd}\n`);
    writeSecret(join(dir, "acl"), `${acl}`);
  } else {
    appendFileSync(join(dir, "passwd"), `${passwd}\n`, { mode: 0o600 });
    appendFileSync(join(dir, "acl"), `\n${acl}`, { mode: 0o600 });
  }
  const conf = [
    `# Include in mosquitto.conf (or run mosquitto -c ${join(dir, "mosquitto.conf")} after adding a listener).`,
    "# passwd and acl hold secrets (mode 0600): make them owned by the user mosquitto runs as.",
    "allow_anonymous false",
    `password_file ${resolve(dir, "passwd")}`,
    `acl_file ${resolve(dir, "acl")}`,
    "",
  ].join("\n");
  if (!existsSync(join(dir, "mosquitto.conf"))) writeFileSync(join(dir, "mosquitto.conf"), conf, { mode: 0o600 });
}

/** A config.toml parsed; a file that does not parse is an error naming it. */
export function configFile(file: string): Record<string, unknown> {
  try {
    return parseToml(readFileSync(file, "utf8"), file);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/**
 * One section of a config.toml, for a proplet or proxy whose environment is incomplete (as upstream's read it).
 * A missing file is no section; a file that does not parse is an error naming it.
 */
export function configSection(file: string, name: string): Partial<ConfigSection> {
  if (!existsSync(file)) return {};
  const s = configFile(file)[name];
  return typeof s === "object" && s !== null ? (s as Partial<ConfigSection>) : {};
}

function readConfig(file: string): { text: string; manager: ConfigSection } {
  if (!existsSync(file)) throw new UsageError(`${file} not found: run \`propeller provision\` first`);
  const text = readFileSync(file, "utf8");
  const parsed = parseToml(text, file) as Record<string, Partial<ConfigSection> | undefined>;
  const m = parsed.manager;
  if (!m) throw new UsageError(`missing [manager] section in ${file}`);
  if (!m.tenant_id || !m.channel_id)
    throw new UsageError(`tenant_id and channel_id are required in [manager] of ${file}`);
  return { text, manager: m as ConfigSection };
}

const fileArg = {
  "file-name": { type: "string", alias: "f", description: "the config file", default: "config.toml" },
  mosquitto: { type: "string", description: "also write passwd, acl and mosquitto.conf for a real mosquitto here" },
} as const;

export const provisionCommand = defineCommand({
  meta: { name: "provision", description: "Create a site's identities through serve and write upstream's config.toml" },
  args: {
    proplets: { type: "string", description: "how many proplet identities", default: "1" },
    ...fileArg,
    ...urlArg,
  },
  subCommands: {
    "add-proplets": defineCommand({
      meta: { description: "Add N proplet identities to an existing config.toml" },
      args: { count: { type: "positional", description: "how many", default: "1" }, ...fileArg, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const file = args["file-name"];
          const { text } = readConfig(file);
          const n = int("count", args.count, 1, 1000);
          const made = [];
          for (let i = 0; i < n; i++) made.push(await create(args, "proplet"));
          writeSecret(file, addProplets(text, made));
          if (args.mosquitto) writeMosquitto(args.mosquitto, made, false);
          const total = propletCount(text) + n;
          process.stdout.write(`Added ${n} proplet(s) to ${file} (total: ${total})\n`);
          process.stdout.write(startLine(file, `proplet${total}`, made[0]?.broker));
        }),
    }),
    "add-proxy": defineCommand({
      meta: { description: "Replace the proxy identity in an existing config.toml" },
      args: { ...fileArg, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const file = args["file-name"];
          const { text } = readConfig(file);
          const proxy = await create(args, "proxy");
          writeSecret(file, replaceProxy(text, proxy));
          if (args.mosquitto) writeMosquitto(args.mosquitto, [proxy], false);
          process.stdout.write(`Added proxy entity to ${file}\n`);
        }),
    }),
  },
  run: ({ args, rawArgs }) =>
    action(async () => {
      // citty runs the parent's `run` after a subcommand's: only a bare `provision` provisions.
      if (rawArgs.some((a) => a === "add-proplets" || a === "add-proxy")) return;
      const n = int("proplets", args.proplets, 1, 1000);
      const manager = await create(args, "manager");
      const proplets = [];
      for (let i = 0; i < n; i++) proplets.push(await create(args, "proplet"));
      const proxy = await create(args, "proxy");
      const file = args["file-name"];
      writeSecret(file, renderConfig(manager, proplets, proxy));
      if (args.mosquitto) writeMosquitto(args.mosquitto, [manager, ...proplets, proxy], true);
      process.stdout.write(`Successfully created ${file} (${n} proplet(s); mode 0600: it holds API keys)\n`);
      process.stdout.write(startLine(file, n === 1 ? "proplet" : "proplet1", proxy.broker));
    }),
});
