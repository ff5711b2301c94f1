import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, tempDir, until } from "./helpers.ts";

// Debian's docker-registry for the tests, on a free loopback port with storage in a temp dir: open, behind
// htpasswd basic auth, or behind a bearer-token service.

export interface Registry {
  host: string;
  proc: ReturnType<typeof Bun.spawn>;
}

export async function startRegistry(
  auth?: { user: string; password: string },
  token?: { realm: string; certFile: string },
): Promise<Registry> {
  const bin = ["/usr/bin/docker-registry", Bun.which("docker-registry")].find((p) => p && Bun.file(p).size > 0);
  if (!bin) throw new Error("docker-registry is not installed: apt-get install docker-registry (.ci/run does)");
  const dir = tempDir("registry-");
  const port = await freePort();
  let authCfg = "";
  if (auth) {
    writeFileSync(
      join(dir, "htpasswd"),
      `${auth.user}:${await Bun.password.hash(auth.password, { algorithm: "bcrypt", cost: 5 })}\n`,
    );
    authCfg = `auth:\n  htpasswd:\n    realm: test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  if (token)
    authCfg = `auth:\n  token:\n    realm: ${token.realm}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: ${token.certFile}\n`;
  writeFileSync(
    join(dir, "config.yml"),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\nhttp:\n  addr: 127.0.0.1:${port}\n${authCfg}`,
  );
  const proc = Bun.spawn([bin, "serve", join(dir, "config.yml")], { stdout: "ignore", stderr: "ignore" });
  const host = `127.0.0.1:${port}`;
  await until("the registry to answer", async () => {
    const r = await fetch(`http://${host}/v2/`);
    return r.status === 200 || r.status === 401;
  });
  return { host, proc };
}
