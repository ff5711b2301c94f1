import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { defineCommand } from "citty";
import { isPemPrivateKey, signCosign } from "../core/cosign.ts";
import { parseReference, type Reference } from "../core/oci.ts";
import { signSimpleSigning } from "../core/simple-signing.ts";
import { referenceText } from "../core/trust-policy.ts";
import { hasWasmMagic } from "../core/wasm-binary.ts";
import { openModule } from "../proplet/decrypt.ts";
import { writeCosignSignature } from "../proxy/cosign.ts";
import { DEFAULT_REGISTRIES_D, lookasideWritePath, TrustConfigError, TrustVerifier } from "../proxy/trust.ts";
import { action, env, int, readUserFile, UsageError } from "./args.ts";
import { keyPassphrase } from "./passphrase.ts";
import { registryFromEnv, registryList } from "./proxy.ts";

const creds = {
  username: { type: "string", description: "registry user (env PROPELLER_REGISTRY_USERNAME)" },
  password: {
    type: "string",
    description: "registry password (env PROPELLER_REGISTRY_PASSWORD); a token: PROPELLER_REGISTRY_TOKEN",
  },
  "registry-auth-hosts": {
    type: "string",
    description:
      "comma-separated hosts (host[:port]) the credentials go to, e.g. the registry's token service on another host; default the reference's registry alone (env PROPELLER_REGISTRY_AUTH_HOSTS)",
  },
} as const;

/** The client for a push or pull of `ref`: the credentials go to its registry, or to the hosts named. */
function clientFor(ref: string, args: { username?: string; password?: string; "registry-auth-hosts"?: string }) {
  const named = registryList(
    "--registry-auth-hosts",
    args["registry-auth-hosts"] ?? env("PROPELLER_REGISTRY_AUTH_HOSTS"),
  );
  const parsed = parseReference(ref);
  const own = typeof parsed === "string" ? [] : [parsed.registry.toLowerCase()];
  const max = env("PROPELLER_MAX_MODULE_MB");
  return registryFromEnv(undefined, args, {
    authHosts: named.length ? named : own,
    ...(max ? { maxModuleMb: int("PROPELLER_MAX_MODULE_MB", max, 1, 4096) } : {}),
  });
}

/** A progress bar on stderr, for people watching a terminal. */
function progress(label: string): (done: number, total: number) => void {
  if (!process.stderr.isTTY) return () => {};
  return (done, total) => {
    const w = 30;
    const f = Math.round((done / total) * w);
    process.stderr.write(
      `\r${label} [${"#".repeat(f)}${" ".repeat(w - f)}] ${(done / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB${done === total ? "\n" : ""}`,
    );
  };
}

export const pushCommand = defineCommand({
  meta: {
    name: "push",
    description: "Upload a .wasm module to an OCI registry as an artifact (oras / wasm-to-oci layout)",
  },
  args: {
    file: { type: "positional", description: "the .wasm file", required: true },
    ref: { type: "positional", description: "host[:port]/repository:tag", required: true },
    "sign-key": {
      type: "string",
      description:
        "an armored OpenPGP private key (no passphrase): write a simple-signing signature of the manifest to the registry's lookaside store (registries.d), as skopeo copy --sign-by does; an ECDSA P-256 PEM key (propeller keys create; its passphrase in env PROPELLER_KEY_PASSPHRASE, else asked on the terminal): write cosign's signature beside the manifest (tag sha256-<hex>.sig), as cosign sign --key does",
    },
    "registries-d": {
      type: "string",
      description: `where the registry's lookaside store is named (env PROPELLER_REGISTRIES_D, default ${DEFAULT_REGISTRIES_D})`,
    },
    "encrypt-recipient": {
      type: "string",
      description:
        "encrypt the layer for these RSA public keys (ocicrypt's format): jwe:PUBKEY.pem, comma-separated for several",
    },
    ...creds,
  },
  run: ({ args }) =>
    action(async () => {
      const recipients = (args["encrypt-recipient"] ?? "")
        .split(",")
        .map((r) => r.trim())
        .filter(Boolean)
        .map((r) => {
          if (!r.startsWith("jwe:")) throw new UsageError(`--encrypt-recipient ${r}: only jwe:PUBKEY.pem is supported`);
          return readUserFile(r.slice(4)).toString("utf8");
        });
      const bytes = new Uint8Array(readUserFile(args.file));
      if (!hasWasmMagic(bytes)) throw new UsageError(`${args.file} is not a WebAssembly module`);
      const signKey = args["sign-key"] ? readUserFile(args["sign-key"]).toString("utf8") : undefined;
      // A key is tried before the push: a wrong key, passphrase or lookaside must not leave an unsigned module behind.
      if (signKey && /-----BEGIN (PUBLIC KEY|PGP PUBLIC KEY BLOCK)-----/.test(signKey))
        throw new UsageError(
          `--sign-key ${args["sign-key"]}: a public key; signing needs the private one (keys create writes PREFIX.key beside PREFIX.pub)`,
        );
      // Asked once (env or terminal), before the push, used again to sign after it.
      const passphrase =
        signKey && /-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(signKey)
          ? await keyPassphrase(args["sign-key"]!)
          : undefined;
      if (signKey && isPemPrivateKey(signKey)) {
        try {
          signCosign(signKey, new Uint8Array(), passphrase);
        } catch (e) {
          throw new UsageError(`--sign-key ${args["sign-key"]}: ${(e as Error).message}`);
        }
      } else if (signKey) {
        const registriesD = args["registries-d"] ?? env("PROPELLER_REGISTRIES_D") ?? DEFAULT_REGISTRIES_D;
        try {
          await signSimpleSigning(signKey, args.ref, `sha256:${"0".repeat(64)}`).catch((e: Error) => {
            if (/passphrase/.test(e.message)) throw e;
            throw new Error(`neither an armored OpenPGP private key nor a PEM one from keys create (${e.message})`);
          });
          const ref = parseReference(args.ref);
          if (typeof ref !== "string") lookasideWritePath(registriesD, ref, `sha256:${"0".repeat(64)}`);
        } catch (e) {
          throw new UsageError(`--sign-key ${args["sign-key"]}: ${(e as Error).message}`);
        }
      }
      const client = clientFor(args.ref, args);
      const r = await client.push(args.ref, bytes, progress(`pushing ${args.ref}`), recipients);
      process.stdout.write(
        `${args.ref} ${r.digest} (manifest ${r.manifestDigest})${recipients.length ? `, encrypted for ${recipients.length} recipient(s)` : ""}\n`,
      );
      if (signKey && isPemPrivateKey(signKey)) {
        const ref = parseReference(args.ref) as Reference;
        let s: { tag: string; fingerprint: string };
        try {
          s = await writeCosignSignature(client, ref, referenceText(ref), r.manifestDigest, signKey, passphrase);
        } catch (e) {
          throw new UsageError(`--sign-key: ${(e as Error).message}`);
        }
        process.stdout.write(`signed by ${s.fingerprint}: ${ref.registry}/${ref.repository}:${s.tag}\n`);
      } else if (signKey) {
        const ref = parseReference(args.ref) as Reference;
        const registriesD = args["registries-d"] ?? env("PROPELLER_REGISTRIES_D") ?? DEFAULT_REGISTRIES_D;
        let path: string;
        try {
          path = lookasideWritePath(registriesD, ref, r.manifestDigest);
        } catch (e) {
          throw new UsageError(`--sign-key: ${(e as Error).message}`);
        }
        const sig = await signSimpleSigning(signKey, referenceText(ref), r.manifestDigest);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, sig.signature);
        process.stdout.write(`signed by ${sig.fingerprint}: ${path}\n`);
      }
    }),
});

export const pullCommand = defineCommand({
  meta: { name: "pull", description: "Download a Wasm module from an OCI registry" },
  args: {
    ref: { type: "positional", description: "host[:port]/repository[:tag|@sha256:…]", required: true },
    output: { type: "string", alias: "o", description: "file to write", required: true },
    "decryption-key": {
      type: "string",
      description: "PEM private key (a file or a directory of them) to open an encrypted module (ocicrypt's JWE)",
    },
    ...creds,
  },
  run: ({ args }) =>
    action(async () => {
      const r = await clientFor(args.ref, args).pull(args.ref);
      let bytes = r.bytes;
      if (r.encrypted) {
        if (!args["decryption-key"]) {
          throw new UsageError(`${args.ref} is encrypted: give --decryption-key KEY.pem to write the module`);
        }
        const opened = openModule(bytes, true, args["decryption-key"]);
        if (typeof opened === "string") throw new UsageError(`${args.ref}: ${opened}`);
        bytes = opened;
      }
      writeFileSync(args.output, bytes);
      process.stdout.write(`${args.output} ${r.digest} (${bytes.length} bytes${r.encrypted ? ", decrypted" : ""})\n`);
    }),
});

export const verifyCommand = defineCommand({
  meta: {
    name: "verify",
    description: "Say what a trust policy (containers-policy.json) decides for a module reference, and why",
  },
  args: {
    ref: { type: "positional", description: "host[:port]/repository[:tag|@sha256:…]", required: true },
    "trust-policy": {
      type: "string",
      description: "the policy file (env PROPELLER_TRUST_POLICY)",
    },
    "registries-d": {
      type: "string",
      description: `where each registry's signatures are (env PROPELLER_REGISTRIES_D, default ${DEFAULT_REGISTRIES_D})`,
    },
    ...creds,
  },
  run: ({ args }) =>
    action(async () => {
      const policy = args["trust-policy"] ?? env("PROPELLER_TRUST_POLICY");
      if (!policy) throw new UsageError("verify needs --trust-policy FILE (or PROPELLER_TRUST_POLICY)");
      const registriesD = args["registries-d"] ?? env("PROPELLER_REGISTRIES_D") ?? DEFAULT_REGISTRIES_D;
      let v: TrustVerifier;
      try {
        v = await TrustVerifier.load(policy, registriesD, clientFor(args.ref, args));
      } catch (e) {
        if (e instanceof TrustConfigError) throw new UsageError(e.message);
        throw e;
      }
      const c = await v.image(args.ref);
      process.stdout.write(
        `${c.allowed ? "accepted" : "refused"}: ${c.reason}${c.digest ? ` [manifest ${c.digest}]` : ""}\n`,
      );
      if (!c.allowed) process.exitCode = 1;
    }),
});
