import { chmodSync, copyFileSync, existsSync, mkdirSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { defineCommand } from "citty";
import { log } from "../log.ts";
import { action, UsageError } from "./args.ts";
import {
  type Entry,
  MANIFEST,
  type Manifest,
  makeDirs,
  readManifest,
  record,
  removeDirIfEmpty,
  removeFile,
  unitState,
  writeManifest,
} from "./install-manifest.ts";
import { SYSTEM_CONFIG } from "./layers.ts";

// `propeller install` / `uninstall`: a system service from the compiled binary — a `propeller` system user, its
// data dir (0700), /etc/propeller/config.toml (only if absent; 0600: it may hold an api_key) and a hardened
// systemd unit running `serve` (or, with --proplet, a worker). What it created is recorded in a manifest
// (install-manifest.ts) so that `uninstall --purge` removes that and no other unit's state. `--root DIR` writes into another root (an image being built, a test);
// `--dry-run` prints what would be done and changes nothing.

const BIN = "/usr/local/bin/propeller";
const DATA = "/var/lib/propeller";
const USER = "propeller";

const unitName = (proplet: boolean) => (proplet ? "propeller-proplet.service" : "propeller.service");

/** The unit. The hardening leaves the service its data dir to write and nothing else of the system. */
export function unit(proplet: boolean): string {
  const what = proplet ? "proplet (runs Wasm tasks for a manager)" : "serve (broker, manager, storage, console)";
  const env = proplet ? `PROPLET_DATA_DIR=${DATA}/proplet` : `PROPELLER_DATA_DIR=${DATA}`;
  return `[Unit]
Description=Propeller ${what}
After=network-online.target
Wants=network-online.target

[Service]
# READY=1 once serving (an active manager or a stand-by; a proplet on its broker), WATCHDOG=1 every
# WatchdogSec/2 from the event loop: a process whose loop hangs is restarted. ExecReload: SIGHUP reloads TLS
# certificates and log settings (docs/ARCHITECTURE.md, "Health").
Type=notify
NotifyAccess=main
WatchdogSec=30s
TimeoutStartSec=120s
ExecReload=/bin/kill -HUP $MAINPID
User=${USER}
Group=${USER}
ExecStart=${BIN} ${proplet ? "proplet" : "serve"} --config ${SYSTEM_CONFIG}
Environment=${env}
# journald keeps the time and level; colour codes would only be noise there.
Environment=NO_COLOR=1
Restart=on-failure
RestartSec=2
UMask=0077
LimitNOFILE=65536
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
ReadWritePaths=${DATA}
PrivateTmp=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
RestrictSUIDSGID=true
RestrictRealtime=true
RestrictNamespaces=true
LockPersonality=true
SystemCallArchitectures=native
CapabilityBoundingSet=
AmbientCapabilities=

[Install]
WantedBy=multi-user.target
`;
}

/** The settings file a new install starts from: every key commented out but the data dir. */
export const CONFIG_TEMPLATE = `# Propeller settings: flags > environment > this file > defaults. \`propeller config show\` prints them all.
# Keys are the flag names with "_" (see \`propeller serve --help\`, \`propeller proplet --help\`).

[serve]
data_dir = "${DATA}"
# host = "0.0.0.0"
# http_port = 7070
# mqtt_port = 1883
# tls_cert = "/etc/propeller/certs/server.pem"
# tls_key = "/etc/propeller/certs/server.key"

[proplet]
# mqtt_address = "mqtt://gateway:1883"
# entity_id = "…"        # or PROPLET_ENTITY_ID; without one the proplet keeps its own id in ${DATA}/proplet
# api_key = "…"
`;

interface Step {
  say: string;
  run(): void;
}

function isCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/");
}

function userExists(name: string): boolean {
  return Bun.spawnSync(["id", "-u", name], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}

function sh(cmd: string[]): void {
  const p = Bun.spawnSync(cmd, { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (exit ${p.exitCode})`);
}

const rootArgs = {
  proplet: { type: "boolean", description: "the worker's unit (propeller-proplet.service) instead of serve's" },
  root: { type: "string", description: "install into this root instead of / (no user is created there)" },
  "dry-run": { type: "boolean", description: "print what would be done, change nothing" },
} as const;

function perform(steps: Step[], dryRun: boolean | undefined): void {
  for (const s of steps) {
    process.stdout.write(`${dryRun ? "would " : ""}${s.say}\n`);
    if (!dryRun) s.run();
  }
}

/** Where install and uninstall write: `at(path)` inside `--root`, and whether that is the real system. */
function target(args: { root?: string; "dry-run"?: boolean }): {
  at: (p: string) => string;
  real: boolean;
  root: string;
} {
  const root = args.root ?? "/";
  if (root === "") throw new UsageError("--root needs a directory");
  const real = root === "/";
  if (!args["dry-run"] && real && process.getuid?.() !== 0)
    throw new UsageError("install as root (sudo), or use --root DIR or --dry-run");
  return { at: (p) => join(root, p), real, root };
}

export const installCommand = defineCommand({
  meta: { name: "install", description: "Install as a systemd service: user, data dir, config file and unit" },
  args: rootArgs,
  run: ({ args }) =>
    action(() => {
      const { at, real, root } = target(args);
      // A dry run refuses what the real run would: it shows what would happen, and from source nothing would.
      if (!isCompiled()) {
        throw new UsageError("install from the compiled binary: npm run build, then dist/propeller install");
      }
      const name = unitName(!!args.proplet);
      // What this and earlier installs created (see install-manifest.ts); written last, read by uninstall.
      const m: Manifest = readManifest(at) ?? { units: [], created: [] };
      const steps: Step[] = [];
      // An image being built may start from nothing: its root is made (not recorded: uninstall leaves it).
      if (!existsSync(root)) {
        steps.push({ say: `create ${root} (--root)`, run: () => mkdirSync(root, { recursive: true, mode: 0o755 }) });
      } else if (!statSync(root).isDirectory()) throw new UsageError(`--root ${root} is not a directory`);
      if (real && !userExists(USER)) {
        steps.push({
          say: `create the system user ${USER}`,
          run: () => {
            sh(["useradd", "--system", "--user-group", "--home-dir", DATA, "--shell", "/usr/sbin/nologin", USER]);
            record(m, { kind: "user", path: USER });
          },
        });
      }
      const self = isCompiled() ? realpathSync(process.execPath) : "(this executable)";
      if (self !== realpathSyncSafe(at(BIN))) {
        steps.push({
          say: `copy ${self} to ${at(BIN)}`,
          run: () => {
            makeDirs(at, m, dirname(BIN));
            if (!existsSync(at(BIN))) record(m, { kind: "file", path: BIN });
            copyFileSync(self, `${at(BIN)}.new`);
            chmodSync(`${at(BIN)}.new`, 0o755);
            rmSync(at(BIN), { force: true });
            copyFileSync(`${at(BIN)}.new`, at(BIN));
            chmodSync(at(BIN), 0o755);
            rmSync(`${at(BIN)}.new`, { force: true });
          },
        });
      }
      // Only the data dir is 0700; parents it has to make (var, var/lib) are 0755, existing ones keep their mode.
      steps.push({
        say: `create ${at(DATA)} (0700${real ? `, owned by ${USER}` : ""})`,
        run: () => {
          makeDirs(at, m, DATA, 0o700);
          chmodSync(at(DATA), 0o700);
          if (real) sh(["chown", `${USER}:${USER}`, DATA]);
        },
      });
      if (!existsSync(at(SYSTEM_CONFIG))) {
        // The template asks for an api_key: readable by the service (and root) only.
        steps.push({
          say: `write ${at(SYSTEM_CONFIG)} (0600${real ? `, owned by ${USER}` : ""})`,
          run: () => {
            makeDirs(at, m, dirname(SYSTEM_CONFIG));
            writeFileSync(at(SYSTEM_CONFIG), CONFIG_TEMPLATE, { mode: 0o600 });
            chmodSync(at(SYSTEM_CONFIG), 0o600);
            record(m, { kind: "file", path: SYSTEM_CONFIG });
            if (real) sh(["chown", `${USER}:${USER}`, SYSTEM_CONFIG]);
          },
        });
      }
      const unitPath = `/etc/systemd/system/${name}`;
      steps.push({
        say: `write ${at(unitPath)}:\n${unit(!!args.proplet).replace(/^/gm, "    ")}`,
        run: () => {
          makeDirs(at, m, dirname(unitPath));
          writeFileSync(at(unitPath), unit(!!args.proplet), { mode: 0o644 });
          record(m, { kind: "file", path: unitPath, unit: name });
        },
      });
      steps.push({
        say: `record what was created in ${at(MANIFEST)}`,
        run: () => {
          makeDirs(at, m, dirname(MANIFEST));
          record(m, { kind: "file", path: MANIFEST });
          if (!m.units.includes(name)) m.units.push(name);
          writeManifest(at, m);
        },
      });
      if (real && Bun.which("systemctl")) {
        steps.push({ say: "systemctl daemon-reload", run: () => sh(["systemctl", "daemon-reload"]) });
      }
      perform(steps, args["dry-run"]);
      if (!args["dry-run"]) log.info(`installed: systemctl enable --now ${name}`);
    }),
});

function realpathSyncSafe(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** Without a manifest (an install by an older version): the unit files found, the data dir and /etc/propeller. */
function legacyManifest(at: (p: string) => string): Manifest {
  const m: Manifest = { units: [], created: [] };
  for (const u of [unitName(false), unitName(true)]) {
    if (existsSync(at(`/etc/systemd/system/${u}`))) {
      m.units.push(u);
      m.created.push({ kind: "file", path: `/etc/systemd/system/${u}`, unit: u });
    }
  }
  m.created.unshift(
    { kind: "dir", path: DATA },
    { kind: "dir", path: "/etc/propeller" },
    { kind: "file", path: SYSTEM_CONFIG },
  );
  return m;
}

export const uninstallCommand = defineCommand({
  meta: {
    name: "uninstall",
    description:
      "Remove the systemd unit; --purge also removes its state and, with the last unit, what install created",
  },
  args: {
    ...rootArgs,
    purge: {
      type: "boolean",
      description:
        "also delete this unit's state; with the last unit, also the binary, settings, data dir and user install created",
    },
  },
  run: ({ args }) =>
    action(() => {
      const { at, real } = target(args);
      const name = unitName(!!args.proplet);
      const hadManifest = existsSync(at(MANIFEST));
      const m = readManifest(at) ?? legacyManifest(at);
      if (!m.units.includes(name) && !existsSync(at(`/etc/systemd/system/${name}`))) {
        process.stderr.write(`${name} is not installed${real ? "" : ` in ${at("/")}`}: nothing to remove\n`);
        return;
      }
      m.units = m.units.filter((u) => u !== name);
      const mine = m.created.filter((e) => e.unit === name);
      m.created = m.created.filter((e) => e.unit !== name);
      const steps: Step[] = [];
      if (real && Bun.which("systemctl")) {
        steps.push({
          say: `systemctl disable --now ${name}`,
          run: () => Bun.spawnSync(["systemctl", "disable", "--now", name], { stdout: "inherit", stderr: "inherit" }),
        });
      }
      const unitPath = `/etc/systemd/system/${name}`;
      steps.push({ say: `remove ${at(unitPath)}`, run: () => removeFile(at, unitPath) });
      for (const e of mine.reverse()) if (e.path !== unitPath) steps.push(removal(at, e, args["dry-run"]));
      const last = m.units.length === 0;
      if (!args.purge) {
        steps.push({ say: `keep ${at(DATA)} and ${at("/etc/propeller")} (--purge removes them)`, run: () => {} });
      } else {
        for (const s of unitState(at, DATA, !!args.proplet)) {
          steps.push({ say: `remove ${at(s)}`, run: () => rmSync(at(s), { recursive: true, force: true }) });
        }
        if (!last) {
          steps.push({
            say: `keep what ${m.units.join(", ")} still uses (binary, settings, ${at(DATA)} and its state)`,
            run: () => {},
          });
        } else {
          if (!m.created.some((e) => e.path === BIN)) {
            steps.push({ say: `keep ${at(BIN)} (install did not put it there)`, run: () => {} });
          }
          for (const e of [...m.created].reverse()) steps.push(removal(at, e, args["dry-run"], real));
          m.created = [];
        }
      }
      // The manifest goes with the last purge (it is one of the shared entries); otherwise it is updated.
      if (hadManifest && !(args.purge && last)) {
        steps.push({ say: `update ${at(MANIFEST)}`, run: () => writeManifest(at, m) });
      }
      perform(steps, args["dry-run"]);
    }),
});

/** The step removing one created entry: a file, a directory if empty, the user. */
function removal(at: (p: string) => string, e: Entry, dryRun?: boolean, real?: boolean): Step {
  if (e.kind === "user") {
    return {
      say: `remove the user ${e.path}`,
      run: () => {
        if (real && userExists(e.path)) sh(["userdel", e.path]);
      },
    };
  }
  if (e.kind === "file") return { say: `remove ${at(e.path)}`, run: () => removeFile(at, e.path) };
  return {
    say: `remove ${at(e.path)}${dryRun ? " if empty" : ""}`,
    run: () => {
      const kept = removeDirIfEmpty(at, e.path);
      if (kept) process.stdout.write(`  ${kept}\n`);
    },
  };
}
