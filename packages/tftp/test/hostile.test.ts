import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSource, TftpServer, encodeTftpPacket } from '../src/index.js';
import { acceptsRequest, mayStart, nextToStart } from '../src/client-limits.js';
import { tftpGet } from './client.js';
import { FakeClock, HOST, RawPeer, record, until } from './loopback.js';

const LIMITS = { maxConcurrent: 4, perClientMax: 2, perClientUnconfirmed: 3 };

describe('client limits (pure)', () => {
  it.each([
    [0, true],
    [2, true],
    [3, false],
  ])('an address with %i unconfirmed requests: new one taken = %s', (unconfirmed, expected) => {
    expect(acceptsRequest(unconfirmed, LIMITS)).toBe(expected);
  });

  it.each([
    [0, 0, true],
    [3, 1, true],
    [4, 0, false],
    [1, 2, false],
  ])('%i running, %i of its address: may start = %s', (total, ofClient, expected) => {
    expect(mayStart(total, ofClient, LIMITS)).toBe(expected);
  });

  it.each([
    { queue: ['a', 'a', 'b'], running: { a: 1 }, total: 1, next: 2 }, // b has none running: it goes before a's older request
    { queue: ['a', 'b'], running: { a: 1, b: 1 }, total: 2, next: 0 }, // equal: oldest first
    { queue: ['a', 'a'], running: { a: 2 }, total: 2, next: -1 }, // a at its limit
    { queue: ['b'], running: {}, total: 4, next: -1 }, // server full
    { queue: [], running: {}, total: 0, next: -1 },
  ])('queue $queue with $running running → index $next', ({ queue, running, total, next }) => {
    expect(nextToStart(queue, (ip) => (running as Record<string, number>)[ip] ?? 0, total, LIMITS)).toBe(next);
  });
});

/** Issue 19 item 8 on loopback: RRQs that never ACK from 30 source addresses (127.0.0.10–39). */
describe('TftpServer under a flood of RRQs that never ACK', () => {
  let work: string;
  const kernel = randomBytes(2 * 1024 * 1024);
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'tofu-hostile-'));
    writeFileSync(join(work, 'kernel8.img'), kernel);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('a legitimate download completes byte-exact, and transfers, queue and descriptors return to baseline', async () => {
    const server = new TftpServer({ address: HOST, port: 0, source: new FileSource({ root: work, sharedFolder: null }) });
    const { port } = await server.start();
    const dropped = record(server, 'packet-dropped');
    const fds = () => readdirSync('/proc/self/fd').length;
    const baseline = fds();
    try {
      const rrq = encodeTftpPacket({ type: 'rrq', filename: 'kernel8.img', mode: 'octet', options: {} });
      for (let i = 0; i < 100; i++) {
        for (let s = 0; s < 30; s++) {
          const socket = createSocket('udp4');
          await new Promise<void>((resolve) => socket.bind(0, `127.0.0.${10 + s}`, resolve));
          await new Promise<void>((resolve) => socket.send(rrq, port, HOST, () => resolve()));
          socket.close();
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      // Every address is held to its unconfirmed limit, so the server never fills and never queues.
      expect(server.stats.active).toBeLessThanOrEqual(30 * 8);
      expect(dropped.some((d) => d.reason === 'unconfirmed-limit')).toBe(true);
      const legit = await tftpGet({
        host: HOST,
        port,
        file: 'kernel8.img',
        options: { blksize: '1468' },
        bindAddress: '127.0.0.250',
        keep: true,
        timeoutMs: 1000,
        retries: 30,
        totalTimeoutMs: 30_000,
      });
      expect(legit.ok).toBe(true);
      expect(Buffer.compare(legit.data!, kernel)).toBe(0);
      // Unacknowledged transfers give up after their first-ACK retries (about 5 s at the default 1 s timeout).
      await until(() => server.stats.active === 0 && server.stats.queued === 0, 30_000);
      await until(() => fds() <= baseline, 5_000);
    } finally {
      await server.close();
    }
  }, 60_000);

  it('answers every not-found probe of a Pi-like client, even hundreds in a row from one port', async () => {
    const server = new TftpServer({ address: HOST, port: 0, source: new FileSource({ root: work, sharedFolder: null }) });
    const { port } = await server.start();
    const peer = await RawPeer.open();
    try {
      let answered = 0;
      for (let i = 0; i < 300; i++) {
        peer.send({ type: 'rrq', filename: `missing-${i % 10}.bin`, mode: 'octet', options: { tsize: '0', blksize: '1468' } }, port);
        const reply = await peer.next(2000);
        if (reply?.packet.type === 'error' && reply.packet.code === 1) answered++;
      }
      expect(answered).toBe(300);
    } finally {
      peer.close();
      await server.close();
    }
  }, 60_000);

  it('a spoofed plain RRQ reflects at most 1 + firstAckRetries DATA packets', async () => {
    const server = new TftpServer({
      address: HOST,
      port: 0,
      source: new FileSource({ root: work, sharedFolder: null }),
      timeoutMs: 50,
      maxTimeoutMs: 400,
    });
    const { port } = await server.start();
    const failed = record(server, 'transfer-failed');
    const victim = await RawPeer.open();
    try {
      victim.send({ type: 'rrq', filename: 'kernel8.img', mode: 'octet', options: {} }, port);
      await until(() => failed.length === 1, 5000);
      expect(victim.inbox.map((m) => m.packet.type)).toEqual(['data', 'data', 'data', 'data', 'data']);
      expect(failed[0]).toMatchObject({ reason: 'timeout', retries: 4 });
    } finally {
      victim.close();
      await server.close();
    }
  });
});

describe('TftpServer and a client that repeats its RRQ but never ACKs (fake clock)', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'tofu-repeat-'));
    writeFileSync(join(work, 'kernel8.img'), randomBytes(64 * 1024));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('repeating every 2 s (a Pi, or a spoofer) no longer keeps the slot: it ends within (firstAckRetries + 1) × oackTimeoutMs', async () => {
    const clock = new FakeClock();
    // Server defaults: timeoutMs 1000, oackTimeoutMs 6000, firstAckRetries 4, so the bound is 5 × 6 s.
    const server = new TftpServer({ address: HOST, port: 0, source: new FileSource({ root: work, sharedFolder: null }), clock });
    const { port } = await server.start();
    const failed = record(server, 'transfer-failed');
    const dropped = record(server, 'packet-dropped');
    const pi = await RawPeer.open();
    const oacks = () => pi.inbox.filter((m) => m.packet.type === 'oack').length;
    try {
      const rrq = { type: 'rrq', filename: 'kernel8.img', mode: 'octet', options: { blksize: '1024', tsize: '0' } } as const;
      pi.send(rrq, port);
      await until(() => oacks() === 1);
      // 100 repeats = 200 s simulated, far past the bound (before the fix it never ended).
      for (let repeat = 0; repeat < 100 && failed.length === 0; repeat++) {
        clock.advance(2000);
        if (failed.length > 0) break;
        const before = dropped.length;
        pi.send(rrq, port);
        await until(() => dropped.length > before);
      }
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ reason: 'timeout' });
      expect(failed[0]!.durationMs).toBeLessThanOrEqual(5 * 6000);
      expect(failed[0]!.retries).toBeLessThanOrEqual(4);
      await until(() => oacks() === failed[0]!.retries + 1); // every OACK, timed or answering a repeat, counted
      await until(() => server.stats.active === 0);
      // The slot and the (address, port) are free: the next repeat is a new request.
      pi.send(rrq, port);
      await until(() => server.stats.started === 2);
    } finally {
      pi.close();
      await server.close();
    }
  });
});

describe('ReadTransferMachine: loss-tolerant rules (issue 19 item 9)', () => {
  const sink = () => {
    const log: string[] = [];
    let outcome: string | undefined;
    return {
      log,
      get outcome() {
        return outcome;
      },
      sendOack: () => void log.push('oack'),
      sendBlocks: (a: number, b: number) => void log.push(`data ${a}-${b}`),
      armTimer: () => undefined,
      finish: (o: { kind: string }) => {
        outcome = o.kind;
      },
    };
  };
  const base = { size: 4096, blksize: 1024, windowsize: 1, timeoutMs: 100, maxTimeoutMs: 400, maxRetries: 2, maxDurationMs: 60_000 };

  it('after maxRetries, a confirmed transfer ends only once the client showed no life for stallGiveUpMs', async () => {
    const { ReadTransferMachine } = await import('../src/index.js');
    for (const answering of [true, false]) {
      const s = sink();
      const m = new ReadTransferMachine({ ...base, oack: false, stallGiveUpMs: 2_000 }, s);
      m.start(0);
      m.onAck(1, 10); // confirmed; DATA 2 out
      let t = 10;
      for (let i = 0; i < 4; i++) {
        t += 400;
        m.onTimeout(t);
        if (answering) m.onAck(1, t + 1); // atftp's extra ACK for the duplicate DATA 2
      }
      expect(s.outcome).toBeUndefined(); // 1.6 s: within the floor either way
      for (let i = 0; i < 6; i++) {
        t += 400;
        m.onTimeout(t);
        if (answering) m.onAck(1, t + 1);
      }
      expect(s.outcome).toBe(answering ? undefined : 'timeout');
    }
  });

  it('a repeated RRQ while the OACK waits for ACK 0 sends the OACK again at once; after ACK 0 it does nothing', async () => {
    const { ReadTransferMachine } = await import('../src/index.js');
    const s = sink();
    const m = new ReadTransferMachine({ ...base, oack: true, oackTimeoutMs: 600 }, s);
    m.start(0);
    expect(m.timeoutMs).toBe(600);
    expect(m.onRequestRepeated(1000)).toBe(true);
    m.onAck(0, 1050);
    expect(m.onRequestRepeated(3000)).toBe(false);
    expect(s.log).toEqual(['oack', 'oack', 'data 1-1']);
  });
});
