import { env, UsageError } from "./args.ts";

// A signing key's passphrase, as cosign asks for one: env PROPELLER_KEY_PASSPHRASE when set (scripts, CI), else
// typed on the terminal without echo. With neither (no terminal, no env), undefined: the caller says what to do.

const ENV = "PROPELLER_KEY_PASSPHRASE";

/** True when a person can be asked: both stdin and stderr (where the question goes) are a terminal. */
const interactive = (): boolean => Boolean(process.stdin.isTTY && process.stderr.isTTY);

/**
 * For a new key: the env's passphrase, or one typed twice on the terminal (empty: the key is not encrypted).
 * Undefined when there is no terminal and no env.
 */
export async function newKeyPassphrase(file: string): Promise<string | undefined> {
  const fromEnv = env(ENV);
  if (fromEnv !== undefined || !interactive()) return fromEnv || undefined;
  const first = await ask(`passphrase for ${file} (empty: not encrypted): `);
  if (!first) return undefined;
  if ((await ask("the same again: ")) !== first) throw new UsageError("the two passphrases differ: nothing written");
  return first;
}

/** For an encrypted key being read: the env's passphrase, or one typed on the terminal; else undefined. */
export async function keyPassphrase(file: string): Promise<string | undefined> {
  const fromEnv = env(ENV);
  if (fromEnv !== undefined || !interactive()) return fromEnv || undefined;
  return (await ask(`passphrase for ${file}: `)) || undefined;
}

/** Reads one line from the terminal in raw mode, echoing nothing; Ctrl-C ends the command as it would. */
function ask(question: string): Promise<string> {
  process.stderr.write(question);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve) => {
    let typed = "";
    const done = (answer: string) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      resolve(answer);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") return done(typed);
        if (ch === "\u0003") {
          stdin.setRawMode(false);
          process.stderr.write("\n");
          process.exit(130);
        }
        if (ch === "\u007f" || ch === "\b") typed = [...typed].slice(0, -1).join("");
        else if (ch >= " ") typed += ch;
      }
    };
    stdin.on("data", onData);
  });
}
