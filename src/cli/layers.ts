import { existsSync, readFileSync } from "node:fs";
import { nearest, UsageError } from "./args.ts";
import { parseToml } from "./toml.ts";

// serve's settings a proplet takes only from its environment: said so, rather than "unknown key".
const PROPLET_ENV_ONLY: Record<string, string> = {
  trust_policy: "PROPLET_TRUST_POLICY",
  registries_d: "PROPLET_REGISTRIES_D",
};

// Where a long-running command's settings come from, in order: the flag, the environment, the config file
// (`--config FILE`, else /etc/propeller/config.toml when present; section `[serve]` or `[proplet]`, keys are the
// flag names with `_`), the default. `propeller config show` prints each value and its source.

export const SYSTEM_CONFIG = "/etc/propeller/config.toml";

export interface Resolved {
  value: string | boolean | undefined;
  source: string;
  secret: boolean;
}

const key = (flag: string) => flag.replaceAll("-", "_");

export class Layers {
  readonly file?: string;
  private section: Record<string, unknown> = {};
  private sections: Record<string, unknown> = {};
  private used = new Set<string>();
  readonly resolved = new Map<string, Resolved>();
  /** File problems are kept until the command runs, where they are reported as usage errors. */
  readonly problems: string[] = [];

  constructor(
    readonly name: "serve" | "proplet",
    rawArgs: string[],
    /** File keys that mean another key (upstream's `tenant_id` for `domain_id`). */
    private aliases: Record<string, string> = {},
  ) {
    try {
      this.file = configPath(rawArgs);
    } catch (e) {
      this.problems.push(e instanceof Error ? e.message : String(e));
    }
    if (!this.file) return;
    try {
      const all = parseToml(readFileSync(this.file, "utf8"), this.file);
      this.problems.push(...sectionProblems(all, this.file));
      const s = all[name];
      if (s !== undefined && isTable(s)) this.section = s;
      this.sections = all;
    } catch (e) {
      this.problems.push(e instanceof Error ? e.message : `${this.file}: ${e}`);
    }
  }

  /**
   * An identity from provision's section of the same file (`[manager]`, `[proxy]`): `entity_id` and `api_key`, both
   * or neither. A file readable by serve's user alone keeps a key out of `systemctl show`, where Environment= is.
   */
  identity(section: "manager" | "proxy"): { id: string; key: string } | undefined {
    const s = this.sections[section];
    if (s === undefined || !isTable(s)) return undefined;
    const id = s.entity_id;
    const key = s.api_key;
    if (id === undefined && key === undefined) return undefined;
    if (typeof id !== "string" || typeof key !== "string" || !id || !key)
      throw new UsageError(`[${section}] of ${this.file}: entity_id and api_key go together, as strings`);
    return { id, key };
  }

  /** A setting is declared: its key (and aliases) are known in the file, whichever layer gives its value. */
  private declare(flag: string): void {
    const k = key(flag);
    this.used.add(k);
    for (const [alias, target] of Object.entries(this.aliases)) if (target === k) this.used.add(alias);
  }

  private fromFile(flag: string): { value: unknown; key: string } | undefined {
    const k = key(flag);
    if (k in this.section) return { value: this.section[k], key: k };
    for (const [alias, target] of Object.entries(this.aliases)) {
      if (target === k && alias in this.section) return { value: this.section[alias], key: alias };
    }
    return undefined;
  }

  /** A string setting: environment, else file, else default (the flag, when given, wins over all in citty). */
  text(flag: string, envs: string[], dflt: string, secret?: boolean): string;
  text(flag: string, envs: string[], dflt?: undefined, secret?: boolean): string | undefined;
  text(flag: string, envs: string[], dflt?: string, secret = false): string | undefined {
    this.declare(flag);
    const given = flagGiven(flag);
    for (const e of envs) {
      const v = process.env[e];
      if (v !== undefined && v !== "") return this.noteText(flag, given, v, `env ${e}`, secret);
    }
    const f = this.fromFile(flag);
    if (f) {
      const ok = typeof f.value === "string" || typeof f.value === "number";
      if (!ok) this.problems.push(`${f.key} in [${this.name}] of ${this.file}: expected a string or a number`);
      else return this.noteText(flag, given, String(f.value), `${this.file} (${f.key})`, secret);
    }
    return this.noteText(flag, given, dflt, "default", secret);
  }

  /**
   * A setting with a few allowed values. One from the environment or the file that is not among them is a problem
   * named by its source at check, and the default stands meanwhile (the log settings are applied before check).
   */
  choice(flag: string, envs: string[], dflt: string, allowed: string[]): string {
    const v = this.text(flag, envs, dflt);
    if (allowed.includes(v) || this.resolved.get(flag)?.source === "flag") return v;
    this.problems.push(`${this.label(flag)} must be one of ${allowed.join(", ")}, got ${JSON.stringify(v)}`);
    return dflt;
  }

  /** A boolean setting: environment (`true`/`false`), else file, else default. */
  bool(flag: string, env: string, dflt: boolean): boolean {
    this.declare(flag);
    const given = flagGiven(flag);
    const v = process.env[env];
    if (v !== undefined && v !== "") {
      if (v !== "true" && v !== "false") this.problems.push(`${env} must be true or false, got ${JSON.stringify(v)}`);
      return this.note(flag, given, v !== "false", `env ${env}`) as boolean;
    }
    const f = this.fromFile(flag);
    if (f) {
      if (typeof f.value !== "boolean")
        this.problems.push(`${f.key} in [${this.name}] of ${this.file}: expected true or false`);
      else return this.note(flag, given, f.value, `${this.file} (${f.key})`) as boolean;
    }
    return this.note(flag, given, dflt, "default") as boolean;
  }

  private note(flag: string, given: boolean, value: string | boolean | undefined, source: string, secret = false) {
    this.resolved.set(flag, { value, source: given ? "flag" : source, secret });
    return value;
  }

  private noteText(flag: string, given: boolean, value: string | undefined, source: string, secret: boolean) {
    this.note(flag, given, value, source, secret);
    return value;
  }

  /** How to name a setting in an error: the flag, the variable or the file key it came from. */
  label(flag: string): string {
    const s = this.resolved.get(flag)?.source ?? "flag";
    if (s === "flag" || s === "default") return `--${flag}`;
    if (s.startsWith("env ")) return s.slice(4);
    return `${s.slice(s.lastIndexOf("(") + 1, -1)} in [${this.name}] of ${this.file}`;
  }

  /** The file keys the settings read so far know (their aliases included). */
  knownKeys(): string[] {
    return [...this.used];
  }

  /** Refuses the run when the file had a problem or a key no setting knows (with the nearest one it does). */
  check(): void {
    for (const k of Object.keys(this.section)) {
      if (this.used.has(k)) continue;
      const near = nearest(k, [...this.used]);
      const env = this.name === "proplet" ? PROPLET_ENV_ONLY[k] : undefined;
      this.problems.push(
        `unknown key ${k} in [${this.name}] of ${this.file}${env ? `: a proplet reads it from the env var ${env}` : near ? ` (did you mean ${near}?)` : ""}`,
      );
    }
    if (this.problems.length) throw new UsageError(this.problems.join("; "));
  }
}

/** `--config FILE` (or `=FILE`), else PROPELLER_CONFIG, else the system file when it exists. */
function configPath(rawArgs: string[]): string | undefined {
  for (let i = 0; i < rawArgs.length; i++) {
    const m = /^--config(?:=(.*))?$/.exec(rawArgs[i]!);
    if (m) {
      const path = m[1] ?? rawArgs[i + 1];
      if (!path || !existsSync(path)) throw new UsageError(`--config ${path ?? ""}: no such file`);
      return path;
    }
  }
  const env = process.env.PROPELLER_CONFIG;
  if (env) {
    if (!existsSync(env)) throw new UsageError(`PROPELLER_CONFIG ${env}: no such file`);
    return env;
  }
  return existsSync(SYSTEM_CONFIG) ? SYSTEM_CONFIG : undefined;
}

function flagGiven(flag: string): boolean {
  return process.argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`) || a === `--no-${flag}`);
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The sections a config file may have: serve's and a proplet's settings, and what `propeller provision` writes
 * (`[manager]`, `[proplet]` or `[proplet1]`…, `[proxy]`). Anything else is a mistake, not something to ignore.
 */
const SECTION = /^(serve|proplet\d*|manager|proxy)$/;

/** A key outside any section, an unknown section, or a section that is not a table, each named with the file. */
export function sectionProblems(all: Record<string, unknown>, file: string): string[] {
  const problems: string[] = [];
  for (const [k, v] of Object.entries(all)) {
    if (!isTable(v)) {
      problems.push(`${k} in ${file} is outside any section: put it under [serve] or [proplet]`);
    } else if (!SECTION.test(k)) {
      const near = nearest(k, ["serve", "proplet", "manager", "proxy"]);
      problems.push(
        `unknown section [${k}] in ${file}${near ? ` (did you mean [${near}]?)` : ""}: sections are [serve], [proplet], and provision's [manager], [propletN], [proxy]`,
      );
    }
  }
  return problems;
}

/** A command's arguments as they are when no flag is given: each default, which the layers made (config show). */
export function defaultsOf(defs: Record<string, { default?: unknown }>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(defs).map(([k, d]) => [k, d.default]));
}
