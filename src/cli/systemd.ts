import { fstatSync } from "node:fs";
import { log } from "../log.ts";

// What systemd tells a service through its environment (sd_notify(3), sd-daemon(3)): $NOTIFY_SOCKET, where to say
// READY=1, WATCHDOG=1 and STOPPING=1; $WATCHDOG_USEC, how often it expects WATCHDOG=1; $JOURNAL_STREAM, whether
// stderr is journald's stream. The unit that `propeller install` writes is Type=notify with WatchdogSec=.
//
// The notification socket is a unix datagram socket. Bun has none (node:dgram and Bun.udpSocket speak UDP only,
// node:net streams only), so the datagram goes through libc with bun:ffi: socket(), sendto(), close(), about 50 µs
// a message, measured; it works in the compiled executable too. Spawning `systemd-notify` instead would send from
// another process, which systemd ignores under the default NotifyAccess=main.

const env = (name: string) => process.env[name] || undefined;

/** stderr is journald's stream: $JOURNAL_STREAM names its device and inode (not a shell redirect under it). */
export function underJournald(): boolean {
  const v = env("JOURNAL_STREAM");
  if (!v) return false;
  try {
    const s = fstatSync(2);
    return v === `${s.dev}:${s.ino}`;
  } catch {
    return false;
  }
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;

type Libc = {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: unknown, len: number, flags: number, addr: unknown, addrLen: number): number | bigint;
  close(fd: number): number;
};

let libc: Libc | null | undefined;

/** libc's socket calls, loaded on the first notification (glibc's name first; the release targets are glibc). */
async function loadLibc(): Promise<Libc | null> {
  if (libc !== undefined) return libc;
  const { dlopen, FFIType } = await import("bun:ffi");
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      libc = dlopen(name, {
        socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
        sendto: {
          args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
          returns: FFIType.i64,
        },
        close: { args: [FFIType.i32], returns: FFIType.i32 },
      }).symbols as unknown as Libc;
      return libc;
    } catch {}
  }
  libc = null;
  return libc;
}

/** A sockaddr_un for a path, or for an abstract name written `@name` (its first byte becomes NUL). */
export function unixAddress(path: string): { addr: Uint8Array; len: number } {
  const abstract = path.startsWith("@");
  const name = Buffer.from(abstract ? `\0${path.slice(1)}` : path);
  if (name.length > 107) throw new Error(`NOTIFY_SOCKET is longer than a unix socket path may be`);
  const addr = new Uint8Array(110);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 2);
  return { addr, len: 2 + name.length + (abstract ? 0 : 1) };
}

/** Sends one datagram to a unix socket; false (with a warning, once) if it could not. */
export async function sendDatagram(path: string, message: string): Promise<boolean> {
  const c = await loadLibc();
  if (!c) return false;
  const { ptr } = await import("bun:ffi");
  const { addr, len } = unixAddress(path);
  const body = Buffer.from(message);
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  try {
    return Number(c.sendto(fd, ptr(body), body.length, MSG_NOSIGNAL, ptr(addr), len)) === body.length;
  } finally {
    c.close(fd);
  }
}

/**
 * Tells the service manager about this process, when it runs under one ($NOTIFY_SOCKET set); otherwise every call
 * does nothing. The watchdog pings at half the interval systemd asked for, from the event loop: a process whose
 * loop is stuck stops pinging and is restarted.
 */
export class ServiceNotifier {
  private readonly socket = env("NOTIFY_SOCKET");
  private watchdog?: Timer;
  private warned = false;

  get enabled(): boolean {
    return this.socket !== undefined;
  }

  async notify(state: string): Promise<void> {
    if (!this.socket) return;
    const sent = await sendDatagram(this.socket, state).catch(() => false);
    if (!sent && !this.warned) {
      this.warned = true;
      log.warn("could not tell systemd this service's state ($NOTIFY_SOCKET): no libc socket calls here");
    }
  }

  /** READY=1 with a status line for `systemctl status`. */
  ready(status: string): Promise<void> {
    return this.notify(`READY=1\nSTATUS=${status}`);
  }

  status(status: string): Promise<void> {
    return this.notify(`STATUS=${status}`);
  }

  /** Pings every half of $WATCHDOG_USEC (when it is meant for this process), until stopping(). */
  startWatchdog(): void {
    const usec = Number(env("WATCHDOG_USEC"));
    const pid = env("WATCHDOG_PID");
    if (!this.socket || !Number.isFinite(usec) || usec <= 0 || (pid && Number(pid) !== process.pid)) return;
    const every = Math.max(100, Math.floor(usec / 2000));
    void this.notify("WATCHDOG=1");
    this.watchdog = setInterval(() => void this.notify("WATCHDOG=1"), every);
    this.watchdog.unref();
  }

  async stopping(): Promise<void> {
    clearInterval(this.watchdog);
    await this.notify("STOPPING=1");
  }
}
