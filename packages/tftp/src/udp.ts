import { createSocket } from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';

/** The subset of node:dgram's Socket the server uses; tests inject lossy or reordering wrappers. */
export interface UdpSocket {
  bind(port: number, address: string, callback: () => void): unknown;
  send(msg: Uint8Array | readonly Uint8Array[], port: number, address: string, callback?: (error: Error | null) => void): void;
  /** Sends on a connected socket (no address). Only called after connect() succeeded. */
  send(msg: Uint8Array | readonly Uint8Array[]): void;
  /** Optional: sockets without it (test doubles) run transfers unconnected. */
  connect?(port: number, address: string, callback: () => void): unknown;
  on(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  address(): { address: string; port: number };
  close(callback?: () => void): unknown;
}

/**
 * `transfer` sockets and their `strangers` twin are bound to one address:port (both need
 * SO_REUSEADDR): the transfer socket is then connected to its client and the twin receives
 * whatever else arrives on that TID. A factory whose sockets cannot share a port makes transfers
 * run unconnected on one socket instead.
 */
export type UdpSocketFactory = (role: 'listen' | 'transfer' | 'strangers') => UdpSocket;

/** Time source and timers; tests pass a fake clock. */
export interface TftpClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: TftpClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Every address we send to is a peer's IP literal from rinfo, so resolve it synchronously: the
 * default dns.lookup path costs a process.nextTick per datagram on the hot path.
 */
function literalLookup(address: string, _family: unknown, callback: (error: null, address: string, family: number) => void): void {
  callback(null, address, 4);
}

export function createUdp4Socket(role: 'listen' | 'transfer' | 'strangers' = 'listen'): UdpSocket {
  return createSocket({ type: 'udp4', lookup: literalLookup as never, reuseAddr: role !== 'listen' });
}

export function connectSocket(socket: UdpSocket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    socket.once('error', onError);
    try {
      socket.connect!(port, address, () => {
        socket.off('error', onError);
        resolve();
      });
    } catch (error) {
      socket.off('error', onError);
      reject(error as Error);
    }
  });
}

export function bindSocket(socket: UdpSocket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    socket.once('error', onError);
    try {
      socket.bind(port, address, () => {
        socket.off('error', onError);
        resolve();
      });
    } catch (error) {
      socket.off('error', onError);
      reject(error as Error);
    }
  });
}

/** Closes a socket and resolves once it is closed (at once when it was closed or never bound). */
export function closeSocket(socket: UdpSocket): Promise<void> {
  return new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed or never bound
    }
  });
}

/** Closes a socket without waiting or caring whether it was open. */
export function closeQuietly(socket: UdpSocket): void {
  try {
    socket.close();
  } catch {
    // already closed or never bound
  }
}
