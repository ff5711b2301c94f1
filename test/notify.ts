import { unlinkSync } from "node:fs";
import { unixAddress } from "../src/cli/systemd.ts";

// A service manager's notification socket for the tests: a unix datagram socket bound at a path, as systemd binds
// $NOTIFY_SOCKET. Bun has no unix datagram sockets, so it is libc's, through bun:ffi (as src/cli/systemd.ts sends).

export interface NotifySocket {
  path: string;
  /** Every datagram received so far, in order. */
  messages(): string[];
  close(): void;
}

export async function bindNotifySocket(path: string): Promise<NotifySocket> {
  const { dlopen, FFIType, ptr } = await import("bun:ffi");
  const libc = dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  }).symbols;
  const SOCK_DGRAM_NONBLOCK_CLOEXEC = 2 | 0o4000 | 0o2000000;
  const fd = libc.socket(1, SOCK_DGRAM_NONBLOCK_CLOEXEC, 0);
  const { addr, len } = unixAddress(path);
  if (fd < 0 || libc.bind(fd, ptr(addr), len) !== 0) throw new Error(`cannot bind a unix datagram socket at ${path}`);
  const got: string[] = [];
  const buf = new Uint8Array(4096);
  const poll = setInterval(() => {
    for (;;) {
      const n = Number(libc.recv(fd, ptr(buf), buf.length, 0));
      if (n < 0) return;
      got.push(Buffer.from(buf.subarray(0, n)).toString());
    }
  }, 20);
  return {
    path,
    messages: () => got,
    close: () => {
      clearInterval(poll);
      libc.close(fd);
      try {
        unlinkSync(path);
      } catch {}
    },
  };
}
