// Flags a person carries over from `serve` to a command that takes that setting only from the environment. With
// nothing near it the unknown-flag error said only "unknown flag --data-dir"; it now names the variable to set.

/**
 * What to say after "unknown flag FLAG" for the command `where` (`propeller tasks list`), whose flags are `all`;
 * undefined when there is nothing to add.
 */
export function envInstead(where: string, flag: string, all: readonly string[]): string | undefined {
  if (flag !== "--data-dir") return undefined;
  if (where === "propeller proplet") return "a proplet's state dir is set by the env var PROPLET_DATA_DIR=DIR";
  // A client command (it has --url): the data dir only tells it where a serve on this machine keeps admin.token.
  if (all.includes("--url")) {
    return "a client command finds the admin token of a serve on this machine in PROPELLER_DATA_DIR=DIR (serve's --data-dir), or takes --token";
  }
  return undefined;
}
