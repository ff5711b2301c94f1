import type { Subprocess } from "bun";
import { freePort, until } from "./helpers.ts";

// Debian's mosquitto for the tests of external-broker mode: started on a port of its own (or the one given, to
// come back where its clients are after a restart) and listening when startMosquitto returns.

export function mosquittoBin(): string {
  const bin = Bun.which("mosquitto", { PATH: `/usr/sbin:/usr/bin:${process.env.PATH}` });
  if (!bin) throw new Error("mosquitto is not installed: apt-get install mosquitto (.ci/run does)");
  return bin;
}

export async function startMosquitto(port?: number): Promise<{ proc: Subprocess; port: number; url: string }> {
  const p = port ?? (await freePort());
  const proc = Bun.spawn([mosquittoBin(), "-p", String(p)], { stdout: "ignore", stderr: "ignore" });
  await until("mosquitto to listen", async () => {
    const sock = await Bun.connect({ hostname: "127.0.0.1", port: p, socket: { data() {} } });
    sock.end();
    return true;
  });
  return { proc, port: p, url: `mqtt://127.0.0.1:${p}` };
}
