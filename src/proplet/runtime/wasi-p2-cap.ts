import type { BrowserFilesystemAdapter, BrowserFilesystemDescriptor } from "@bytecodealliance/preview2-shim/filesystem";
import {
  type FileDataEntry,
  InMemoryFilesystemAdapter,
  UNWRAP_DESCRIPTOR,
} from "@bytecodealliance/preview2-shim/in-memory-filesystem";
import { ioErrorCreate } from "@bytecodealliance/preview2-shim/io";
import { type DiskBudget, type DiskRefusal, ENTRY_BYTES } from "./disk-cap.ts";

// The disk bound (disk-cap.ts) in front of preview2-shim's in-memory filesystem, a component's preopens: its
// `set-size` and positional `write` allocate the size they are given, and its output streams grow a file as they
// are written. Every descriptor the adapter hands out is wrapped, and each call that can grow a file or make an
// entry is checked first; a refusal is WASI's `file-too-large` / `insufficient-space`.

type Desc = BrowserFilesystemDescriptor;
type Handler = { write(this: unknown, buf: Uint8Array): void };
type Stream = { handler: Handler };

const code = (r: DiskRefusal) => (r === "file-too-large" ? "file-too-large" : "insufficient-space");

/** A stream's error as the shim's `filesystem-error-code` reads it back: a `payload` with the errno's name. */
function streamError(r: DiskRefusal) {
  const e = ioErrorCreate(code(r));
  Object.assign(e, { payload: { code: r === "file-too-large" ? "EFBIG" : "ENOSPC" } });
  return e;
}

function wrap(inner: Desc, budget: DiskBudget): Desc {
  const size = () => inner.stat().size;
  const refuse = (r: DiskRefusal | undefined) => {
    if (r) throw code(r);
  };
  /** Checks each write of a stream at the offset it writes to, before the shim grows the file. */
  const capStream = <S>(stream: S, start: bigint): S => {
    const s = stream as unknown as Stream;
    const original = s.handler;
    let offset = start;
    s.handler = {
      ...original,
      write(buf: Uint8Array) {
        const r = budget.grow(size(), offset + BigInt(buf.byteLength));
        if (r) throw { tag: "last-operation-failed", val: streamError(r) };
        original.write.call(this, buf);
        offset += BigInt(buf.byteLength);
      },
    };
    return stream;
  };
  const creating = (path: string) => {
    try {
      inner.statAt({}, path);
    } catch (e) {
      if (e === "no-entry") refuse(budget.charge(ENTRY_BYTES));
    }
  };
  const own: Partial<Desc> = {
    setSize: (n) => {
      refuse(budget.grow(size(), n));
      inner.setSize(n);
    },
    write: (buf, offset) => {
      refuse(budget.grow(size(), BigInt(offset) + BigInt(buf.byteLength)));
      return inner.write(buf, offset);
    },
    writeViaStream: (offset) => capStream(inner.writeViaStream(offset), BigInt(offset)),
    appendViaStream: () => capStream(inner.appendViaStream(), size()),
    openAt: (pathFlags, path, openFlags, flags) => {
      if (openFlags.create) creating(path);
      return wrap(inner.openAt(pathFlags, path, openFlags, flags), budget);
    },
    createDirectoryAt: (path) => {
      creating(path);
      inner.createDirectoryAt(path);
    },
    linkAt: (oldFlags, oldPath, target, path) => {
      refuse(budget.charge(ENTRY_BYTES)); // a new name, in the directory `target` names
      inner.linkAt(oldFlags, oldPath, target, path);
    },
    symlinkAt: (old, path) => {
      creating(path);
      inner.symlinkAt(old, path);
    },
  };
  return new Proxy(inner, {
    get(target, key) {
      if (key === UNWRAP_DESCRIPTOR) return target; // rename and link reach the shim's own descriptor through it
      if (Object.hasOwn(own, key)) return own[key as keyof Desc];
      const v = Reflect.get(target, key);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** The in-memory filesystem, every descriptor of it checked against `budget`. */
export function cappedAdapter(budget: DiskBudget): BrowserFilesystemAdapter<FileDataEntry> {
  const memory = new InMemoryFilesystemAdapter();
  return { getRoot: (capability) => wrap(memory.getRoot(capability), budget) };
}
