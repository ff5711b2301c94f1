import { expect } from "bun:test";
import { connect, type Socket } from "node:net";
import mqttPacket from "mqtt-packet";

// Raw MQTT over TCP for the broker's attack tests: bytes exactly as a hostile peer writes them.

export type RawSocket = Socket & { gone: Promise<void> };

/** A TCP connection to the broker on `port`, with a promise for its close. */
export async function tcp(port: number): Promise<RawSocket> {
  const sock = connect(port, "127.0.0.1");
  sock.on("error", () => {});
  const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("close", () => reject(new Error("closed before connecting")));
  });
  return Object.assign(sock, { gone: closed });
}

/**
 * A raw MQTT 3.1.1 session on `port`: CONNECT with these credentials (and `will`, its Last Will), expecting CONNACK
 * 0. `packets` collects what the broker sends afterwards.
 */
export async function rawSession(
  port: number,
  clientId: string,
  login: { username: string; password: string },
  will?: mqttPacket.IConnectPacket["will"],
) {
  const sock = await tcp(port);
  const packets: mqttPacket.Packet[] = [];
  const connack = new Promise<number>((resolve) => {
    const parser = mqttPacket.parser();
    parser.on("packet", (p) => {
      if (p.cmd === "connack") resolve((p as { returnCode: number }).returnCode);
      else packets.push(p);
    });
    sock.on("data", (d: Buffer) => parser.parse(d));
  });
  sock.write(
    mqttPacket.generate({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      clientId,
      keepalive: 60,
      username: login.username,
      password: Buffer.from(login.password),
      ...(will ? { will } : {}),
    }),
  );
  expect(await connack).toBe(0);
  return Object.assign(sock, { packets });
}
