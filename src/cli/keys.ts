import { existsSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { defineCommand } from "citty";
import { generateCosignKeyPair } from "../core/cosign.ts";
import { action, UsageError } from "./args.ts";
import { newKeyPassphrase } from "./passphrase.ts";

// `propeller keys create`: an ECDSA P-256 key pair for cosign's signature format, as `cosign generate-key-pair`
// makes one (docs/ARCHITECTURE.md, "Trusted code"). The private key is PKCS#8 PEM, encrypted (AES-256-CBC, the
// passphrase through PBKDF2) with PROPELLER_KEY_PASSPHRASE or one typed on the terminal (passphrase.ts); cosign's own scrypt+secretbox file is not
// written, so cosign does not read this private key, but verifies what it signs with the public one.

const keysCreate = defineCommand({
  meta: {
    name: "create",
    description:
      "Write an ECDSA P-256 key pair for cosign-format signatures: PREFIX.key (private, mode 0600; encrypted with env PROPELLER_KEY_PASSPHRASE, else with a passphrase asked on the terminal; empty: not encrypted) and PREFIX.pub (the public key a sigstoreSigned policy names)",
  },
  args: {
    "output-key-prefix": {
      type: "string",
      description: "where to write PREFIX.key and PREFIX.pub (default cosign, as cosign generate-key-pair)",
    },
  },
  run: ({ args }) =>
    action(async () => {
      const prefix = args["output-key-prefix"] ?? "cosign";
      if (!prefix.trim()) throw new UsageError("--output-key-prefix: empty");
      const [priv, pub] = [`${prefix}.key`, `${prefix}.pub`];
      for (const f of [priv, pub]) if (existsSync(f)) throw new UsageError(`${f} exists: not overwritten`);
      const into = dirname(priv);
      if (!existsSync(into) || !statSync(into).isDirectory())
        throw new UsageError(`--output-key-prefix ${prefix}: ${into} is not a directory (make it first)`);
      const passphrase = await newKeyPassphrase(priv);
      const pair = generateCosignKeyPair(passphrase);
      writeFileSync(priv, pair.privatePem, { mode: 0o600, flag: "wx" });
      writeFileSync(pub, pair.publicPem, { mode: 0o644, flag: "wx" });
      process.stdout.write(`private key ${priv}${passphrase ? " (encrypted)" : ""}, public key ${pub}\n`);
      if (!passphrase)
        process.stderr.write(
          `note: ${priv} is not encrypted (set PROPELLER_KEY_PASSPHRASE, or type one when asked on a terminal, to encrypt it); anyone who reads it can sign\n`,
        );
    }),
});

export const keysCommand = defineCommand({
  meta: { name: "keys", description: "Signing keys for modules (cosign's format)" },
  subCommands: { create: keysCreate },
});
