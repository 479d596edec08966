/** Loopback helpers shared by the TftpServer tests: a scripted raw peer, event recording, polling. */
import { expect } from 'vitest';
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { decodeTftpPacket, encodeTftpPacket } from '../src/index.js';
import type { TftpPacket, TftpServer, TftpServerEvents } from '../src/index.js';

export const HOST = '127.0.0.1';

/** A raw UDP peer for scripting exact packet sequences. */
export class RawPeer {
  readonly inbox: { packet: TftpPacket; bytes: Buffer; port: number }[] = [];
  private waiters: (() => void)[] = [];
  private constructor(readonly socket: Socket) {
    socket.on('message', (bytes: Buffer, rinfo: RemoteInfo) => {
      this.inbox.push({ packet: decodeTftpPacket(bytes), bytes, port: rinfo.port });
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async open(): Promise<RawPeer> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
    return new RawPeer(socket);
  }
  get port(): number {
    return this.socket.address().port;
  }
  send(packet: TftpPacket | Uint8Array, port: number): void {
    this.socket.send(packet instanceof Uint8Array ? packet : encodeTftpPacket(packet), port, HOST);
  }
  /** Next received packet, or undefined after timeoutMs. */
  async next(timeoutMs = 1000): Promise<{ packet: TftpPacket; port: number } | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.inbox.shift();
  }
  close(): void {
    try {
      this.socket.close();
    } catch {
      // closed already
    }
  }
}

export function record<K extends keyof TftpServerEvents>(server: TftpServer, name: K): TftpServerEvents[K][0][] {
  const seen: TftpServerEvents[K][0][] = [];
  (server as unknown as { on(n: string, l: (e: unknown) => void): void }).on(name, (event) => seen.push(event as TftpServerEvents[K][0]));
  return seen;
}

export async function until(predicate: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Lock-steps `peer` through blocks 1..`blocks` of the transfer on `tid` while `stranger` pokes
 * that port before each block: every poke must get ERROR 5 from the transfer's own port, and the
 * transfer carry on undisturbed. Returns the received data.
 */
export async function receiveWhileStrangersPoke(peer: RawPeer, stranger: RawPeer, tid: number, blocks: number): Promise<Buffer> {
  const received: Buffer[] = [];
  for (let block = 1; block <= blocks; block++) {
    stranger.send({ type: 'ack', block }, tid);
    const answer = await stranger.next();
    expect(answer?.packet).toMatchObject({ type: 'error', code: 5 });
    expect(answer?.port).toBe(tid);
    const data = await peer.next();
    expect(data?.packet).toMatchObject({ type: 'data', block });
    expect(data?.port).toBe(tid);
    received.push(Buffer.from((data!.packet as { data: Uint8Array }).data));
    peer.send({ type: 'ack', block }, tid);
  }
  return Buffer.concat(received);
}

/**
 * A clock the test moves by hand (the server's `clock` option): timers fire only inside
 * `advance`, so time-based rules (timeouts, the duplicate-request window) hold however loaded the
 * machine is. The sockets stay real.
 */
export class FakeClock {
  private at = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { due: number; callback: () => void }>();
  readonly now = (): number => this.at;
  readonly setTimeout = (callback: () => void, ms: number): unknown => {
    const id = this.nextId++;
    this.timers.set(id, { due: this.at + Math.max(0, ms), callback });
    return id;
  };
  readonly clearTimeout = (handle: unknown): void => {
    this.timers.delete(handle as number);
  };
  /** Moves time on by `ms`, firing every timer that falls due on the way, earliest first. */
  advance(ms: number): void {
    const end = this.at + ms;
    for (;;) {
      let first: [number, { due: number; callback: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].due <= end && (!first || entry[1].due < first[1].due)) first = entry;
      if (!first) break;
      this.timers.delete(first[0]);
      this.at = Math.max(this.at, first[1].due);
      first[1].callback();
    }
    this.at = end;
  }
}
