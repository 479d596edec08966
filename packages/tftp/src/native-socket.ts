/**
 * The native transfer socket (native/transfer-socket.c, issue 14): loads the prebuilt addon for
 * this platform, if there is one, and says why when there is not. node:dgram stays the fallback
 * and the path every platform without a prebuilt binary takes.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Opaque handle of one open native socket. */
export type NativeSocketHandle = object & { readonly __nativeSocket: unique symbol };

export const NativeSocketEvent = { ACK: 0, PACKET: 1, ERROR: 2, WRITABLE: 3 } as const;

/**
 * kind ACK: value is the 16-bit block of an ACK; PACKET: any other datagram (a copy); ERROR: a
 * receive error's errno (ECONNREFUSED: the client's port went away); WRITABLE: after
 * awaitWritable(), the socket can send again (no value).
 */
export type NativeSocketListener = (kind: number, value: number | Buffer | undefined) => void;

/** The addon's functions; send functions return 0 or an errno (EAGAIN: the buffer is full, nothing sent). */
export interface TransferSocketAddon {
  open(address: string, onEvent: NativeSocketListener): [NativeSocketHandle, number];
  connect(handle: NativeSocketHandle, address: string, port: number): number;
  sendData(handle: NativeSocketHandle, block: number, bytes: Uint8Array): number;
  send(handle: NativeSocketHandle, bytes: Uint8Array): number;
  /** One WRITABLE event once the socket can send again. */
  awaitWritable(handle: NativeSocketHandle): void;
  close(handle: NativeSocketHandle): void;
}

export type NativeSocketStatus = { readonly loaded: true; readonly path: string } | { readonly loaded: false; readonly reason: string };

/** `IOT_TOFU_TFTP_NATIVE=0` turns the addon off (to compare both paths, or to rule it out). */
export const NATIVE_ENV = 'IOT_TOFU_TFTP_NATIVE';

/** Where the prebuilt binary for a platform lives, inside the package. */
export function prebuiltPath(platform: string = process.platform, arch: string = process.arch): string {
  return fileURLToPath(new URL(`../prebuilds/${platform}-${arch}/transfer-socket.node`, import.meta.url));
}

let loaded: { addon: TransferSocketAddon | undefined; status: NativeSocketStatus } | undefined;

/** The addon for this thread (loaded once per thread; a worker loads its own copy), or undefined. */
export function transferSocketAddon(): TransferSocketAddon | undefined {
  return load().addon;
}

/** Whether the addon is in use here, or why not (for `doctor`, logs and the bench). */
export function nativeSocketStatus(): NativeSocketStatus {
  return load().status;
}

function load(): { addon: TransferSocketAddon | undefined; status: NativeSocketStatus } {
  if (loaded) return loaded;
  const setting = process.env[NATIVE_ENV];
  if (setting === '0' || setting === 'off' || setting === 'false') {
    loaded = { addon: undefined, status: { loaded: false, reason: `${NATIVE_ENV}=${setting}` } };
    return loaded;
  }
  const path = prebuiltPath();
  if (!existsSync(path)) {
    loaded = { addon: undefined, status: { loaded: false, reason: `no prebuilt binary for ${process.platform}-${process.arch}` } };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as TransferSocketAddon;
    loaded = { addon, status: { loaded: true, path } };
  } catch (error) {
    loaded = { addon: undefined, status: { loaded: false, reason: `cannot load ${path}: ${(error as Error).message}` } };
  }
  return loaded;
}
