import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { MODULES } from "../examples/modules.ts";
import { action, UsageError } from "./args.ts";
import { printTable } from "./output.ts";

// `propeller examples`: the small Wasm modules the program carries, so a first run needs no compiler. Their
// sources are examples/*.wat in the repository.

export type ExampleName = keyof typeof MODULES;

/** The bytes of an example, by name; an unknown name is refused with the names there are. */
export function example(name: string): Uint8Array {
  const m = MODULES[name as ExampleName];
  if (!m) throw new UsageError(`no example ${JSON.stringify(name)}: there are ${Object.keys(MODULES).join(", ")}`);
  return Buffer.from(m.wasm, "base64");
}

export const examplesCommand = defineCommand({
  meta: { name: "examples", description: "Example Wasm modules carried by propeller (for tasks create --example)" },
  subCommands: {
    list: defineCommand({
      meta: { description: "List the examples" },
      run: () =>
        action(() => {
          const rows = Object.entries(MODULES).map(([name, m]) => ({ name, about: m.about }));
          // Whole: the text says how to call the module (`--inputs 10,20`), and was cut mid-flag at 60 characters.
          printTable(
            rows,
            [
              ["NAME", "name"],
              ["WHAT IT IS", "about"],
            ],
            ["about"],
          );
        }),
    }),
    write: defineCommand({
      meta: { description: "Write every example as NAME.wasm into DIR" },
      args: { dir: { type: "positional", description: "where to write them", required: true } },
      run: ({ args }) =>
        action(() => {
          mkdirSync(args.dir, { recursive: true });
          for (const name of Object.keys(MODULES)) {
            const file = join(args.dir, `${name}.wasm`);
            writeFileSync(file, example(name));
            process.stdout.write(`${file}\n`);
          }
        }),
    }),
  },
});
