import type { ArgsDef, CommandDef } from "citty";
import { jsonWanted, nearest, UsageError } from "./args.ts";
import { envInstead } from "./flag-hints.ts";
import { EXAMPLES } from "./help-examples.ts";
import { tidyUsage } from "./help-text.ts";
import { terminalSafe } from "./output.ts";

// The command line around citty: strict about flags (an unknown one is an error naming it, with the nearest
// known one), full usage lines ("propeller tasks get <ID>"), `help`, `version`, shell completion, and errors
// that come first with a short usage after them, instead of the whole help page.

type Cmd = CommandDef<ArgsDef>;
type Lazy<T> = T | (() => T | Promise<T>) | Promise<T>;

const resolve = async <T>(v: Lazy<T> | undefined): Promise<T | undefined> =>
  typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;

interface Level {
  name: string;
  cmd: Cmd;
}

/** A usage error found part way down the commands: the levels walked so far make its usage line. */
class WalkError extends UsageError {
  constructor(
    message: string,
    readonly chain: Level[],
  ) {
    super(message);
  }
}

/**
 * Follows the subcommand names in `rawArgs`; returns the chain and the arguments left for the last one. With
 * `group`, it may stop at a command that only groups others (for help and completion).
 */
async function walk(
  main: Cmd,
  rawArgs: string[],
  group = false,
): Promise<{ chain: Level[]; rest: string[]; args: string[] }> {
  const chain: Level[] = [{ name: "propeller", cmd: main }];
  let rest = rawArgs;
  // The arguments with upstream's command names put as ours, for citty.
  const args = [...rawArgs];
  let at = 0;
  for (;;) {
    const cmd = chain.at(-1)!.cmd;
    const subs = await resolve(cmd.subCommands as Lazy<Record<string, Lazy<Cmd>>>);
    if (!subs) return { chain, rest, args };
    // The first word that is neither a flag nor a flag's value names the subcommand.
    const levelArgs = (await resolve(cmd.args as Lazy<ArgsDef>)) ?? {};
    const { all, takesValue } = flagsOf(levelArgs);
    let i = -1;
    for (let k = 0; k < rest.length; k++) {
      const a = rest[k]!;
      if (!a.startsWith("-")) {
        i = k;
        break;
      }
      if (a !== "--" && !all.includes(a.split("=")[0]!)) await misplaced(chain, rest, k, subs);
      if (takesValue.has(a)) k++;
    }
    const typed = i < 0 ? undefined : rest[i]!;
    const word = typed !== undefined && !(typed in subs) && UPSTREAM[typed]! in subs ? UPSTREAM[typed]! : typed;
    if (word !== typed) args[at + i] = word!;
    if (word === undefined || !(word in subs)) {
      // A command that runs by itself takes what follows as its own arguments.
      if (cmd.run || (group && word === undefined)) return { chain, rest, args };
      const where = chain.map((l) => l.name).join(" ");
      // The root's own words (runCli answers them before any walk) are commands a person may type too.
      const names = [...Object.keys(subs), ...(chain.length === 1 ? ROOT_WORDS : [])].join(", ");
      if (word === undefined) {
        // A mistyped flag says so first.
        try {
          checkFlags(where, levelArgs, rest);
        } catch (e) {
          throw new WalkError((e as Error).message, chain);
        }
        throw new WalkError(`${where}: which command? (${names})`, chain);
      }
      const near = nearest(word, Object.keys(subs));
      const hint = near ? ` (did you mean ${near}?)` : "";
      throw new WalkError(`${where}: unknown command ${JSON.stringify(word)}${hint}; commands: ${names}`, chain);
    }
    const sub = (await resolve(subs[word]))!;
    chain.push({ name: word, cmd: sub });
    rest = rest.slice(i + 1);
    at += i + 1;
  }
}

/**
 * A flag this level does not know, before a command further on (`propeller --http-port 1 serve`): typed too early,
 * it is refused naming the command that takes it and the line with it in its place. Without this its value was
 * taken for the command ("unknown command \"1\""), or, between a group and its command, the flag was dropped.
 */
async function misplaced(chain: Level[], rest: string[], k: number, subs: Record<string, Lazy<Cmd>>): Promise<void> {
  const at = rest.findIndex((w, j) => j > k && w in subs);
  if (at < 0) return; // no command follows: judged where it stands (checkFlags)
  const where = chain.map((l) => l.name).join(" ");
  const flag = rest[k]!.split("=")[0]!;
  const next = (await resolve(subs[rest[at]!]))!;
  const path = await takerOf(next, flag, rest.slice(at + 1));
  if (!path) {
    const near = nearest(flag, await flagsAlong(next, rest.slice(at + 1)));
    throw new WalkError(`${where}: unknown flag ${flag}${near ? ` (did you mean ${near}?)` : ""}`, chain);
  }
  const taker = [rest[at]!, ...path];
  const typed = rest.slice(at, at + taker.length);
  const line =
    typed.join(" ") === taker.join(" ")
      ? `, as in ${masked([where, ...typed, ...rest.slice(0, at), ...rest.slice(at + taker.length)]).join(" ")}`
      : "";
  const named = [...chain.slice(1).map((l) => l.name), ...taker].join(" ");
  throw new WalkError(`${where}: ${flag} is an option of ${named}: it goes after it${line}`, chain);
}

/** Flags whose value is a secret: an error that shows the line typed shows "…" in its place. */
const SECRET_FLAGS = new Set(["--token", "--api-key", "--password", "--passphrase", "--key-passphrase"]);

/** The words of a command line with secret flags' values replaced (`--token ppt_…` printed a whole admin token). */
export function masked(words: string[]): string[] {
  return words.map((w, i) => {
    const [flag, ...value] = w.split("=");
    if (value.length && SECRET_FLAGS.has(flag!)) return `${flag}=…`;
    return i > 0 && SECRET_FLAGS.has(words[i - 1]!) && !w.startsWith("--") ? "…" : w;
  });
}

/**
 * The names from `cmd` down to a command under it that takes `flag` ([] for `cmd` itself): the one the words typed
 * after it name (`typed`), if it takes it, else the first found.
 */
async function takerOf(cmd: Cmd, flag: string, typed: string[], depth = 0): Promise<string[] | undefined> {
  if (flagsOf((await resolve(cmd.args as Lazy<ArgsDef>)) ?? {}).all.includes(flag)) return [];
  const subs = depth < 3 ? await resolve(cmd.subCommands as Lazy<Record<string, Lazy<Cmd>>>) : undefined;
  const names = Object.keys(subs ?? {}).sort((a, b) => Number(b === typed[0]) - Number(a === typed[0]));
  for (const name of names) {
    const below = await takerOf(
      (await resolve(subs![name]))!,
      flag,
      name === typed[0] ? typed.slice(1) : [],
      depth + 1,
    );
    if (below) return [name, ...below];
  }
  return undefined;
}

/** The flags of `cmd` and of the commands under it that `typed` names: where a mistyped one's nearest is. */
async function flagsAlong(cmd: Cmd, typed: string[]): Promise<string[]> {
  const own = flagsOf((await resolve(cmd.args as Lazy<ArgsDef>)) ?? {}).all;
  const subs = await resolve(cmd.subCommands as Lazy<Record<string, Lazy<Cmd>>>);
  const next = typed[0] !== undefined && subs && typed[0] in subs ? await resolve(subs[typed[0]]) : undefined;
  return next ? [...own, ...(await flagsAlong(next, typed.slice(1)))] : own;
}

/** Upstream's command names where ours differ (`tasks view` is our `tasks get`). */
const UPSTREAM: Record<string, string> = { view: "get" };

/** The flags a command takes, as typed on the command line. */
function flagsOf(args: ArgsDef): { all: string[]; takesValue: Set<string> } {
  const all: string[] = [];
  const takesValue = new Set<string>();
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    all.push(`--${name}`);
    if (def.type === "boolean") all.push(`--no-${name}`);
    else takesValue.add(`--${name}`);
    for (const a of [(def as { alias?: string | string[] }).alias ?? []].flat()) {
      all.push(a.length === 1 ? `-${a}` : `--${a}`);
      if (def.type !== "boolean") takesValue.add(a.length === 1 ? `-${a}` : `--${a}`);
    }
  }
  return { all: [...all, "--help", "-h"], takesValue };
}

/** The words runCli answers itself at the root: `help`, `version`, `completion` (and `--version`). */
const ROOT_WORDS = ["help", "version", "completion"];

/** Refuses any flag the command does not know, naming it and the nearest it does. */
function checkFlags(where: string, args: ArgsDef, rest: string[]): void {
  const { all, takesValue } = flagsOf(args);
  // `--versoin` at the root: runCli takes `--version` before any walk, so it is among the root's flags here.
  if (where === "propeller") all.push("--version", "-v");
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "--") return;
    if (!a.startsWith("-") || /^-\d/.test(a)) continue;
    const flag = a.includes("=") ? a.slice(0, a.indexOf("=")) : a;
    if (!all.includes(flag)) {
      const near = nearest(flag, all);
      const instead = near ? undefined : envInstead(where, flag, all);
      const hint = near ? ` (did you mean ${near}?)` : instead ? `: ${instead}` : "";
      throw new UsageError(`${where}: unknown flag ${flag}${hint}`);
    }
    if (takesValue.has(flag) && !a.includes("=")) i++;
  }
}

/** Commands that take words past their positionals as their own (a guest's argv, its inputs). */
const TAKES_REST = new Set(["propeller wasm run"]);

/**
 * Refuses words past the positionals a command takes: `serve /some/dir` started on the default data dir, and
 * `tasks create foo bar` created foo, both in silence. A path among them is pointed at `--data-dir`.
 */
function checkPositionals(where: string, args: ArgsDef, rest: string[]): void {
  const { takesValue } = flagsOf(args);
  const named = Object.entries(args).filter(([, d]) => d.type === "positional");
  const words: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "--") break;
    if (a.startsWith("-") && !/^-\d/.test(a)) {
      if (takesValue.has(a) && !a.includes("=")) i++;
    } else words.push(a);
  }
  const extra = words.slice(named.length);
  if (!extra.length) return;
  const takes = named.length ? `it takes ${named.map(([n]) => n.toUpperCase()).join(" ")}` : "it takes none";
  const path = extra.find((w) => w.includes("/"));
  const hint = path && "data-dir" in args ? ` (did you mean --data-dir ${path}?)` : "";
  throw new UsageError(`${where}: unexpected argument ${JSON.stringify(extra[0])}: ${takes}${hint}`);
}

/** `propeller tasks get <ID> [options]`: what a user types, for the line after an error. */
async function usageLine(chain: Level[]): Promise<string> {
  const leaf = chain.at(-1)!.cmd;
  if (leaf.subCommands && !leaf.run) return [...chain.map((l) => l.name), "<command>", "[options]"].join(" ");
  const args = (await resolve(leaf.args as Lazy<ArgsDef>)) ?? {};
  const pos = Object.entries(args)
    .filter(([, d]) => d.type === "positional")
    .map(([n, d]) =>
      d.required === false || d.default !== undefined ? `[${n.toUpperCase()}]` : `<${n.toUpperCase()}>`,
    );
  return [...chain.map((l) => l.name), ...pos, "[options]"].join(" ");
}

async function showHelp(chain: Level[]): Promise<void> {
  const { renderUsage } = await import("citty");
  const leaf = chain.at(-1)!;
  const meta = { ...((await resolve(leaf.cmd.meta as Lazy<Record<string, unknown>>)) ?? {}), name: leaf.name };
  const parent =
    chain.length > 1
      ? {
          meta: {
            name: chain
              .slice(0, -1)
              .map((l) => l.name)
              .join(" "),
          },
        }
      : undefined;
  const usage = await renderUsage({ ...leaf.cmd, meta } as Cmd, parent as Cmd | undefined);
  // A terminal's width; else COLUMNS, else 80 (a pipe, a file).
  const width = Math.max(60, process.stdout.columns || Number(process.env.COLUMNS) || 80);
  process.stdout.write(`${tidyUsage(usage, width)}\n\n`);
  const examples =
    EXAMPLES[
      chain
        .slice(1)
        .map((l) => l.name)
        .join(" ")
    ];
  if (examples) process.stdout.write(`EXAMPLES\n\n${exampleLines(examples, width).join("\n")}\n\n`);
}

/**
 * Examples, each a line to copy whole; one whose trailing `# comment` takes it past the width has the comment on
 * the line above it instead.
 */
function exampleLines(examples: string[], width: number): string[] {
  return examples.flatMap((e) => {
    const m = /^(.*?) {2,}# (.*)$/.exec(e);
    return e.length + 2 <= width || !m ? [`  ${e}`] : [`  # ${m[2]}`, `  ${m[1]}`];
  });
}

/** Candidates for the word being completed, after the words before it. */
async function complete(main: Cmd, words: string[]): Promise<string[]> {
  const current = words.at(-1) ?? "";
  let chain: Level[];
  try {
    const before = words.slice(0, -1).filter((w) => !w.startsWith("-"));
    chain = (await walk(main, before, true)).chain;
  } catch {
    return [];
  }
  const cmd = chain.at(-1)!.cmd;
  const subs = await resolve(cmd.subCommands as Lazy<Record<string, unknown>>);
  const options = current.startsWith("-")
    ? flagsOf((await resolve(cmd.args as Lazy<ArgsDef>)) ?? {}).all
    : subs
      ? Object.keys(subs)
      : [];
  return options.filter((o) => o.startsWith(current));
}

const SCRIPTS: Record<string, string> = {
  bash: `_propeller() { COMPREPLY=($(propeller __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)); }\ncomplete -o default -F _propeller propeller\n`,
  zsh: `#compdef propeller\n_propeller() { compadd -- $(propeller __complete "\${words[@]:1:CURRENT-1}" 2>/dev/null) }\ncompdef _propeller propeller\n`,
  fish: `complete -c propeller -f -a '(propeller __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'\n`,
};

/**
 * Upstream's CLI takes the manager URL before the command (`propeller-cli -m URL tasks list`): such a flag is
 * moved after the command words, where the commands that talk to a manager take it.
 */
function globalFlagsLast(rawArgs: string[]): string[] {
  const moved: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") {
      rest.push(...rawArgs.slice(i));
      break;
    }
    if (/^(-m|--manager-url|--url)$/.test(a) && i + 1 < rawArgs.length) moved.push(a, rawArgs[++i]!);
    else if (/^(--manager-url|--url)=/.test(a)) moved.push(a);
    else rest.push(a);
  }
  const end = rest.indexOf("--");
  return end < 0 ? [...rest, ...moved] : [...rest.slice(0, end), ...moved, ...rest.slice(end)];
}

/** Runs the command line; every usage problem ends as `error: …` and a usage line, exit code 1. */
export async function runCli(main: Cmd, version: string, typedArgs: string[]): Promise<void> {
  const rawArgs = globalFlagsLast(typedArgs);
  const { runCommand } = await import("citty");
  let chain: Level[] = [{ name: "propeller", cmd: main }];
  try {
    const [first, ...after] = rawArgs;
    if (first === "version" || (rawArgs.length === 1 && (first === "--version" || first === "-v"))) {
      process.stdout.write(`${version}\n`);
      return;
    }
    if (first === "__complete") {
      process.stdout.write((await complete(main, after)).map((c) => `${c}\n`).join(""));
      return;
    }
    if (first === "completion") {
      const script = SCRIPTS[after[0] ?? ""];
      if (!script)
        throw new UsageError(
          `completion: give a shell: ${Object.keys(SCRIPTS).join(", ")} (e.g. source <(propeller completion bash))`,
        );
      process.stdout.write(script);
      return;
    }
    if (first === "help" || rawArgs.length === 0) {
      const named = after.filter((a) => !a.startsWith("-"));
      await showHelp((await walk(main, named, true)).chain);
      return;
    }
    // `--help`/`-h` anywhere before `--`, on the root, a group or a leaf: its help, exit 0. The walk stops at a
    // group, so `propeller tasks --help` is the group's page rather than "which command?".
    const ownArgs = rawArgs.includes("--") ? rawArgs.slice(0, rawArgs.indexOf("--")) : rawArgs;
    if (ownArgs.includes("--help") || ownArgs.includes("-h")) {
      const words = ownArgs.filter((a) => a !== "--help" && a !== "-h");
      chain = (await walk(main, words, true)).chain;
      await showHelp(chain);
      return;
    }
    const walked = await walk(main, rawArgs);
    chain = walked.chain;
    const where = chain.map((l) => l.name).join(" ");
    const leafArgs = (await resolve(chain.at(-1)!.cmd.args as Lazy<ArgsDef>)) ?? {};
    checkFlags(where, leafArgs, walked.rest);
    if (!TAKES_REST.has(where)) checkPositionals(where, leafArgs, walked.rest);
    await runCommand(main, { rawArgs: walked.args });
  } catch (e) {
    if (e instanceof WalkError) chain = e.chain;
    const msg = e instanceof Error ? e.message : String(e);
    if (jsonWanted(typedArgs)) {
      process.stderr.write(`${JSON.stringify({ error: msg, usage: await usageLine(chain) })}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(
      `error: ${terminalSafe(msg, true)}\nusage: ${await usageLine(chain)}   (${["propeller help", ...chain.slice(1).map((l) => l.name)].join(" ")})\n`,
    );
    process.exitCode = 1;
  }
}
