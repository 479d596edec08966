import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSource, TftpServer, fromNetascii } from '../src/index.js';
import type { TftpServerOptions, UdpSocket } from '../src/index.js';
import { needs } from '@iot-tofu/test-kit';
import { prebuiltPath } from '../src/native-socket.js';
import { tftpGet } from './client.js';
import { FakeClock, HOST, RawPeer, receiveWhileStrangersPoke, record, until } from './loopback.js';

let dir: string;
let root: string;
const files: Record<string, Buffer> = {};
const servers: TftpServer[] = [];

/** The transfer sockets the running suite asks for (undefined: the server's default). */
let nativeSockets: boolean | undefined;

async function startServer(options: Partial<TftpServerOptions> = {}): Promise<{ server: TftpServer; port: number }> {
  const server = new TftpServer({
    address: HOST,
    port: 0,
    source: new FileSource({ root, isRegistered: (s) => s === '9ffefdef' }),
    // An injected socketFactory always runs on node:dgram.
    ...(nativeSockets !== undefined && !options.socketFactory ? { nativeSockets } : {}),
    ...options,
  });
  servers.push(server);
  const { port } = await server.start();
  return { server, port };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tofu-tftp-'));
  root = join(dir, 'root');
  mkdirSync(join(root, 'base'), { recursive: true });
  const add = (name: string, data: Buffer) => {
    files[name] = data;
    writeFileSync(join(root, name), data);
  };
  add('empty.bin', Buffer.alloc(0));
  add('one.bin', Buffer.from('x'));
  add('511.bin', randomBytes(511));
  add('512.bin', randomBytes(512));
  add('1468x3.bin', randomBytes(1468 * 3));
  add('300k.bin', randomBytes(300_000));
  add('3m.bin', randomBytes(3_000_000));
  add('base/start4.elf', randomBytes(100_000));
  add('text.txt', Buffer.from('line one\nline two\r\nbare\rcr\n'));
  writeFileSync(join(dir, 'secret'), 'outside the root');
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Everything on loopback runs twice: on the native transfer socket (the default wherever the
// prebuilt addon loads) and on node:dgram, the fallback of every other platform.
describe('TftpServer on loopback, native transfer sockets', needs(prebuiltPath()), () => loopbackSuite(true));
describe('TftpServer on loopback, node:dgram transfer sockets', () => loopbackSuite(false));

function loopbackSuite(native: boolean): void {
  beforeAll(() => {
    nativeSockets = native;
  });
  afterAll(() => {
    nativeSockets = undefined;
  });

  it.each([
    ['empty.bin', {}],
    ['one.bin', {}],
    ['511.bin', {}],
    ['512.bin', {}],
    ['512.bin', { blksize: '512' }],
    ['1468x3.bin', { blksize: '1468', tsize: '0' }],
    ['300k.bin', { blksize: '1468', tsize: '0' }],
    ['300k.bin', { blksize: '1024', windowsize: '16' }],
    ['3m.bin', { blksize: '1468', windowsize: '4', tsize: '0' }],
  ] as [string, Record<string, string>][])('serves %s byte-exact with %j', async (file, options) => {
    const { server, port } = await startServer();
    const served = record(server, 'file-served');
    const result = await tftpGet({ host: HOST, port, file, options, keep: true });
    expect(result.ok).toBe(true);
    expect(Buffer.compare(result.data!, files[file]!)).toBe(0);
    if (options.tsize) expect(result.oack?.tsize).toBe(String(files[file]!.length));
    if (Object.keys(options).length === 0) expect(result.oack).toBeUndefined();
    await until(() => served.length === 1);
    expect(served[0]).toMatchObject({
      file,
      bytes: files[file]!.length,
      client: { address: HOST },
      blksize: Number(options.blksize ?? 512),
      windowsize: Number(options.windowsize ?? 1),
    });
    expect(server.stats).toMatchObject({ active: 0, queued: 0, completed: 1 });
  });

  it('answers a Pi 4 probe with the exact tsize, takes "Early terminate" as a normal end, then serves the re-request', async () => {
    const { server, port } = await startServer();
    const aborted = record(server, 'transfer-aborted');
    const failed = record(server, 'transfer-failed');
    const served = record(server, 'file-served');
    const probe = await tftpGet({
      host: HOST,
      port,
      file: '9ffefdef/start4.elf',
      options: { tsize: '0', blksize: '1468' },
      abortAfterOack: true,
    });
    expect(probe.oack).toEqual({ tsize: '100000', blksize: '1468' });
    await until(() => aborted.length === 1);
    expect(aborted[0]).toMatchObject({
      reason: 'client-abort',
      code: 0,
      message: 'Early terminate',
      serial: '9ffefdef',
      file: '9ffefdef/start4.elf',
      origin: 'shared',
    });
    const mid = await tftpGet({
      host: HOST,
      port,
      file: '9ffefdef/start4.elf',
      options: { tsize: '0', blksize: '1468' },
      abortAfterBlocks: 1,
    });
    expect(mid.ok).toBe(true);
    const deep = await tftpGet({ host: HOST, port, file: '9ffefdef/start4.elf', options: { blksize: '512' }, abortAfterBlocks: 50 });
    expect(deep.ok).toBe(true);
    const full = await tftpGet({ host: HOST, port, file: '9ffefdef/start4.elf', options: { tsize: '0', blksize: '1468' }, keep: true });
    expect(Buffer.compare(full.data!, files['base/start4.elf']!)).toBe(0);
    await until(() => aborted.length === 3 && served.length === 1);
    expect(failed).toEqual([]);
    expect(served[0]).toMatchObject({ serial: '9ffefdef', tsize: 100000, retries: 0 });
    expect(server.stats).toMatchObject({ active: 0, aborted: 3, completed: 1, failed: 0 });
  });

  it('answers missing files with ERROR 1 at once, from a fresh port', async () => {
    const { server, port } = await startServer();
    const failed = record(server, 'transfer-failed');
    for (const file of ['bootsig.bin', '9ffefdef/autoboot.txt', '12345678/start4.elf', 'recovery.elf']) {
      const result = await tftpGet({ host: HOST, port, file, options: { tsize: '0' }, retries: 0, timeoutMs: 2000 });
      expect(result.error).toEqual({ code: 1, message: 'File not found' });
      expect(result.serverPort).not.toBe(port);
    }
    await until(() => failed.length === 4);
    expect(failed.map((f) => f.reason)).toEqual(['not-found', 'not-found', 'not-found', 'not-found']);
    expect(failed[1]).toMatchObject({ serial: '9ffefdef', file: '9ffefdef/autoboot.txt' });
    expect(failed[0]!.serial).toBeUndefined();
  });

  it.each([
    ['../secret', 2],
    ['a/../../secret', 2],
    ['..\\secret', 2],
    ['/etc/passwd', 1],
    ['base/../../secret', 2],
    ['base', 1],
  ])('path %j never escapes the root (ERROR %i)', async (file, code) => {
    const { port } = await startServer();
    const result = await tftpGet({ host: HOST, port, file, retries: 0, timeoutMs: 2000 });
    expect(result.ok).toBe(false);
    expect(result.error?.code).toBe(code);
    expect(result.bytes).toBe(0);
  });

  it('refuses WRQ with ERROR 2, unknown opcodes and malformed requests with ERROR 4, unsupported modes with ERROR 4', async () => {
    const { server, port } = await startServer();
    const peer = await RawPeer.open();
    try {
      peer.send({ type: 'wrq', filename: 'x.bin', mode: 'octet', options: {} }, port);
      expect((await peer.next())?.packet).toMatchObject({ type: 'error', code: 2 });
      peer.send(Uint8Array.of(0, 9, 1, 2), port);
      expect((await peer.next())?.packet).toMatchObject({ type: 'error', code: 4 });
      peer.send(Uint8Array.of(0, 1, 0x61, 0x62), port); // RRQ without NUL / mode
      expect((await peer.next())?.packet).toMatchObject({ type: 'error', code: 4 });
      peer.send({ type: 'rrq', filename: 'one.bin', mode: 'mail', options: {} }, port);
      expect((await peer.next())?.packet).toMatchObject({ type: 'error', code: 4 });
      // stray ACK/DATA on the listening port: dropped silently
      peer.send({ type: 'ack', block: 1 }, port);
      expect(await peer.next(150)).toBeUndefined();
      expect(server.stats.dropped).toBeGreaterThanOrEqual(3);
    } finally {
      peer.close();
    }
  });

  it('serves netascii with LF → CR LF and no tsize', async () => {
    const { port } = await startServer();
    const result = await tftpGet({
      host: HOST,
      port,
      file: 'text.txt',
      mode: 'netascii',
      options: { tsize: '0', blksize: '8' },
      keep: true,
    });
    expect(result.oack).toEqual({ blksize: '8' });
    expect(result.data!.toString('latin1')).toBe('line one\r\nline two\r\0\r\nbare\r\0cr\r\n');
    expect(Buffer.from(fromNetascii(result.data!))).toEqual(files['text.txt']);
  });

  it('completes two parallel RRQs for the same file from one IP, different ports', async () => {
    const { server, port } = await startServer();
    const results = await Promise.all(
      [0, 1, 2].map(() => tftpGet({ host: HOST, port, file: '300k.bin', options: { blksize: '1468', tsize: '0' }, keep: true })),
    );
    for (const r of results) expect(Buffer.compare(r.data!, files['300k.bin']!)).toBe(0);
    await until(() => server.stats.completed === 3);
  });

  it('does not start a second transfer for a retransmitted RRQ from the same (ip, port)', async () => {
    // The 200 ms duplicate window is measured on this clock, so a stall of the loaded machine cannot move a copy out of it.
    const clock = new FakeClock();
    const { server, port } = await startServer({ clock });
    const dropped = record(server, 'packet-dropped');
    const peer = await RawPeer.open();
    try {
      const rrq = { type: 'rrq', filename: '300k.bin', mode: 'octet', options: { blksize: '1468' } } as const;
      peer.send(rrq, port);
      const oack = await peer.next();
      expect(oack?.packet).toEqual({ type: 'oack', options: { blksize: '1468' } });
      // a copy right behind the first is the network's duplicate: no second OACK (atftp aborts on one)
      peer.send(rrq, port);
      await until(() => dropped.filter((d) => d.reason === 'duplicate-request').length === 1);
      clock.advance(300);
      // a repeat after a while means the OACK was lost: it comes again, from the same TID
      peer.send(rrq, port);
      await until(() => dropped.filter((d) => d.reason === 'duplicate-request').length === 2);
      expect(server.stats.started).toBe(1);
      expect(await peer.next()).toEqual(oack);
      // the transfer carries on normally after the duplicates
      peer.send({ type: 'ack', block: 0 }, oack!.port);
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 1 });
      expect(peer.inbox).toEqual([]);
    } finally {
      peer.close();
    }
  });

  it('answers a foreign TID with ERROR 5 and carries on', async () => {
    const { server, port } = await startServer();
    const peer = await RawPeer.open();
    const stranger = await RawPeer.open();
    try {
      peer.send({ type: 'rrq', filename: '1468x3.bin', mode: 'octet', options: {} }, port);
      const first = await peer.next();
      expect(first?.packet).toMatchObject({ type: 'data', block: 1 });
      stranger.send({ type: 'ack', block: 1 }, first!.port);
      expect((await stranger.next())?.packet).toMatchObject({ type: 'error', code: 5 });
      peer.send({ type: 'ack', block: 1 }, first!.port);
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 2 });
      expect(server.stats.active).toBe(1);
    } finally {
      peer.close();
      stranger.close();
    }
  });

  it('connects the transfer socket; a stranger on its port still gets ERROR 5 from that port and the transfer completes', async () => {
    const connects: { port: number; address: string }[] = [];
    const socketFactory = (role: 'listen' | 'transfer' | 'strangers'): UdpSocket => {
      const socket = createSocket({ type: 'udp4', reuseAddr: role !== 'listen' });
      const connect = socket.connect.bind(socket) as (port: number, address: string, cb: () => void) => void;
      return Object.assign(socket, {
        connect: (port: number, address: string, cb: () => void) => {
          connects.push({ port, address });
          connect(port, address, cb);
        },
      }) as unknown as UdpSocket;
    };
    const { server, port } = await startServer({ socketFactory });
    const served = record(server, 'file-served');
    const dropped = record(server, 'packet-dropped');
    const peer = await RawPeer.open();
    const stranger = await RawPeer.open();
    try {
      peer.send({ type: 'rrq', filename: '1468x3.bin', mode: 'octet', options: { blksize: '1468' } }, port);
      const oack = await peer.next();
      expect(oack?.packet).toMatchObject({ type: 'oack' });
      expect(connects).toEqual([{ port: peer.port, address: HOST }]);
      peer.send({ type: 'ack', block: 0 }, oack!.port);
      // Strangers poke the transfer's port between blocks: each gets ERROR 5 from that very port.
      const received = await receiveWhileStrangersPoke(peer, stranger, oack!.port, 4);
      expect(Buffer.compare(received, files['1468x3.bin']!)).toBe(0);
      await until(() => served.length === 1);
      expect(dropped.filter((d) => d.reason === 'foreign-tid')).toHaveLength(4);
      expect(peer.inbox).toEqual([]);
    } finally {
      peer.close();
      stranger.close();
    }
  });

  it('a client that vanishes (ICMP port unreachable on the connected socket) times out without warnings', async () => {
    const logged: { level: string; msg: string | undefined }[] = [];
    const log = (level: string) => (_obj: object, msg?: string) => void logged.push({ level, msg });
    const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
    const { server, port } = await startServer({ logger, timeoutMs: 40, maxTimeoutMs: 40, maxRetries: 2 });
    const failed = record(server, 'transfer-failed');
    const peer = await RawPeer.open();
    peer.send({ type: 'rrq', filename: '1468x3.bin', mode: 'octet', options: {} }, port);
    expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 1 });
    peer.close();
    await until(() => failed.length === 1);
    expect(failed[0]).toMatchObject({ reason: 'timeout' });
    expect(logged.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    expect(logged.some((l) => l.msg === 'tftp: client port unreachable')).toBe(true);
  });

  it("accepts padded ACKs and never resends on a duplicate ACK (Sorcerer's Apprentice)", async () => {
    // Fixed 400 ms timeout: the 250 ms of silence below must not be cut by a retransmission.
    const { server, port } = await startServer({ timeoutMs: 400, adaptiveTimeout: false });
    const peer = await RawPeer.open();
    try {
      peer.send({ type: 'rrq', filename: '1468x3.bin', mode: 'octet', options: { blksize: '1468' } }, port);
      const oack = await peer.next();
      const tid = oack!.port;
      peer.send(Uint8Array.of(0, 4, 0, 0, 0, 0, 0, 0), tid); // padded ACK 0 (Pi 5)
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 1 });
      peer.send({ type: 'ack', block: 1 }, tid);
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 2 });
      // delayed duplicate of ACK 1: must not trigger another DATA 2
      peer.send({ type: 'ack', block: 1 }, tid);
      peer.send({ type: 'ack', block: 0 }, tid);
      expect(await peer.next(250)).toBeUndefined();
      peer.send({ type: 'ack', block: 2 }, tid);
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 3 });
      peer.send({ type: 'ack', block: 3 }, tid);
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 4 });
      peer.send({ type: 'ack', block: 4 }, tid);
      await until(() => server.stats.completed === 1);
    } finally {
      peer.close();
    }
  });

  it('retransmits with back-off, then gives up and frees everything', async () => {
    const { server, port } = await startServer({ timeoutMs: 40, maxTimeoutMs: 80, maxRetries: 3 });
    const failed = record(server, 'transfer-failed');
    const peer = await RawPeer.open();
    try {
      peer.send({ type: 'rrq', filename: '300k.bin', mode: 'octet', options: { blksize: '1468' } }, port);
      await until(() => failed.length === 1, 3000);
      // OACK + 3 retransmissions, then silence
      expect(peer.inbox.map((m) => m.packet.type)).toEqual(['oack', 'oack', 'oack', 'oack']);
      expect(failed[0]).toMatchObject({ reason: 'timeout', retries: 3, bytes: 0 });
      expect(server.stats).toMatchObject({ active: 0, failed: 1 });
    } finally {
      peer.close();
    }
  });

  it('echoes the timeout option and uses it as the retransmission interval', async () => {
    const { port } = await startServer({ timeoutMs: 5000 });
    const peer = await RawPeer.open();
    try {
      peer.send({ type: 'rrq', filename: 'one.bin', mode: 'octet', options: { timeout: '1', foo: 'bar' } }, port);
      expect((await peer.next())?.packet).toEqual({ type: 'oack', options: { timeout: '1' } });
      const started = Date.now();
      expect((await peer.next(2500))?.packet).toEqual({ type: 'oack', options: { timeout: '1' } });
      expect(Date.now() - started).toBeGreaterThan(700);
    } finally {
      peer.close();
    }
  });

  /** RRQ, ACK 0 and ACK 1 answered at once (two round-trip samples), then silence: when does DATA 2 come again? */
  async function resendDelayAfterTwoSamples(port: number, options: Record<string, string>, waitMs: number) {
    const peer = await RawPeer.open();
    try {
      peer.send({ type: 'rrq', filename: '300k.bin', mode: 'octet', options: { blksize: '1468', ...options } }, port);
      const oack = await peer.next();
      expect(oack?.packet.type).toBe('oack');
      peer.send({ type: 'ack', block: 0 }, oack!.port);
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 1 });
      peer.send({ type: 'ack', block: 1 }, oack!.port);
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 2 });
      const silentFrom = Date.now();
      const again = await peer.next(waitMs);
      expect(again?.packet).toMatchObject({ type: 'data', block: 2 });
      return Date.now() - silentFrom;
    } finally {
      peer.close();
    }
  }

  it('adapts the retransmission timeout to the measured round trip (loopback: the floor, not timeoutMs)', async () => {
    const { port } = await startServer({ timeoutMs: 2000, minTimeoutMs: 40 });
    const delay = await resendDelayAfterTwoSamples(port, {}, 1500);
    expect(delay).toBeGreaterThanOrEqual(35);
    expect(delay).toBeLessThan(500);
  });

  it('a negotiated timeout (RFC 2349) is honoured exactly, measured round trips notwithstanding', async () => {
    const { port } = await startServer({ timeoutMs: 5000, minTimeoutMs: 20 });
    const delay = await resendDelayAfterTwoSamples(port, { timeout: '1' }, 2500);
    expect(delay).toBeGreaterThan(900);
  });

  it("starts a client's next transfer from the round trip of its last one", async () => {
    const { server, port } = await startServer({ timeoutMs: 3000, minTimeoutMs: 30 });
    const first = await tftpGet({ host: HOST, port, file: 'one.bin', options: { blksize: '1468' }, timeoutMs: 2000 });
    expect(first.ok).toBe(true);
    await until(() => server.stats.completed === 1);
    const peer = await RawPeer.open();
    try {
      // No options, so no OACK (which always waits the full timeout): DATA 1 comes at once.
      peer.send({ type: 'rrq', filename: '300k.bin', mode: 'octet', options: {} }, port);
      expect((await peer.next())?.packet.type).toBe('data');
      const started = Date.now();
      // Unanswered DATA 1: resent after the remembered round trip's timeout (the floor), not 3 s.
      expect((await peer.next(2000))?.packet.type).toBe('data');
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      peer.close();
    }
  });

  it('rolls the block number over 65535 → 0 → 1 (blksize 8, 65537 blocks)', async () => {
    const size = 65536 * 8 + 1;
    writeFileSync(join(root, 'rollover.bin'), randomBytes(size));
    const expected = await new FileSource({ root }).open('rollover.bin');
    const { server, port } = await startServer();
    const result = await tftpGet({ host: HOST, port, file: 'rollover.bin', options: { blksize: '8' }, keep: true, totalTimeoutMs: 30_000 });
    expect(result.ok).toBe(true);
    expect(result.blocks).toBe(65537);
    expect(Buffer.compare(result.data!, Buffer.from(await expected.body.read(0, size)))).toBe(0);
    expected.body.release();
    await until(() => server.stats.completed === 1);
  }, 30_000);

  it('queues transfers past maxConcurrent and per-client limits, then serves them all', async () => {
    const { server, port } = await startServer({ maxConcurrent: 2, perClientMax: 1 });
    let maxQueued = 0;
    server.on('transfer-started', () => (maxQueued = Math.max(maxQueued, server.stats.queued)));
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        tftpGet({ host: HOST, port, file: '300k.bin', options: { blksize: '1468' }, keep: true, timeoutMs: 3000 }),
      ),
    );
    for (const r of results) expect(Buffer.compare(r.data!, files['300k.bin']!)).toBe(0);
    expect(maxQueued).toBeGreaterThan(0);
    await until(() => server.stats.completed === 5);
    expect(server.stats).toMatchObject({ active: 0, queued: 0 });
  });

  it('rate-limits RRQs per client IP', async () => {
    const { server, port } = await startServer({ requestRate: { perSecond: 0.001, burst: 3 } });
    const dropped = record(server, 'packet-dropped');
    const results = await Promise.all(
      Array.from({ length: 5 }, () => tftpGet({ host: HOST, port, file: 'one.bin', retries: 0, timeoutMs: 300 })),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(3);
    expect(dropped.filter((d) => d.reason === 'rate-limited')).toHaveLength(2);
  });

  it('answers garbage at most at the request rate (no reflection of a flood)', async () => {
    const { server, port } = await startServer({ requestRate: { perSecond: 0.001, burst: 3 } });
    const peer = await RawPeer.open();
    try {
      for (let i = 0; i < 10; i++) peer.send(Uint8Array.of(0, 42, i), port);
      await until(() => server.stats.dropped === 10);
      await new Promise((r) => setTimeout(r, 100));
      expect(peer.inbox.map((m) => m.packet)).toEqual(
        Array.from({ length: 3 }, () => ({ type: 'error', code: 4, message: 'Illegal TFTP operation' })),
      );
    } finally {
      peer.close();
    }
  });

  it('reports io-error and frees the slot when a transfer socket cannot be bound', async () => {
    const factory = (role: 'listen' | 'transfer' | 'strangers'): UdpSocket => {
      const socket = createSocket('udp4');
      if (role === 'listen') return socket as unknown as UdpSocket;
      // An address this host does not have: bind fails with EADDRNOTAVAIL (nothing is sent).
      const bind = socket.bind.bind(socket);
      return Object.assign(socket, {
        bind: (port: number, _address: string, cb: () => void) => bind(port, '192.0.2.1', cb),
      }) as unknown as UdpSocket;
    };
    const { server, port } = await startServer({ socketFactory: factory });
    const failed = record(server, 'transfer-failed');
    const result = await tftpGet({ host: HOST, port, file: 'one.bin', retries: 0, timeoutMs: 300 });
    expect(result.ok).toBe(false);
    await until(() => failed.length === 1);
    expect(failed[0]).toMatchObject({ reason: 'io-error', file: 'one.bin' });
    expect(server.stats).toMatchObject({ active: 0, queued: 0 });
  });

  it('survives random garbage on the listening port and on transfer ports while transfers run', async () => {
    // (RawPeer decodes what it receives; the garbage peer only gets well-formed ERROR replies.)
    const ports = new Set<number>();
    // Learn each transfer socket's port as it binds, so the garbage reaches the transfers too.
    // reuseAddr as the default factory does: transfers run connected, garbage lands on the stranger twins.
    const socketFactory = (role: 'listen' | 'transfer' | 'strangers'): UdpSocket => {
      const socket = createSocket({ type: 'udp4', reuseAddr: role !== 'listen' });
      socket.once('listening', () => ports.add(socket.address().port));
      return socket as unknown as UdpSocket;
    };
    const { server, port } = await startServer({ requestRate: { perSecond: 1000, burst: 1000 }, socketFactory });
    const noisy = await RawPeer.open();
    let seed = 99;
    const random = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) & 0xff;
    };
    const foreign = record(server, 'packet-dropped');
    try {
      const downloads = Promise.all(
        [0, 1, 2].map(() => tftpGet({ host: HOST, port, file: '300k.bin', options: { blksize: '512' }, keep: true, timeoutMs: 500 })),
      );
      const flood = (async () => {
        for (let i = 0; i < 600; i++) {
          const length = random() % 24;
          const junk = Uint8Array.from({ length }, (_v, k) => (k === 0 ? random() % 2 : k === 1 ? random() % 9 : random()));
          for (const target of ports) noisy.send(junk, target);
          if (i % 50 === 0) await new Promise((r) => setTimeout(r, 2));
        }
      })();
      const [results] = await Promise.all([downloads, flood]);
      for (const r of results) expect(Buffer.compare(r.data!, files['300k.bin']!)).toBe(0);
      expect(ports.size).toBeGreaterThan(1);
      expect(server.stats.dropped).toBeGreaterThan(100);
      expect(foreign.some((d) => d.reason === 'foreign-tid')).toBe(true);
      await until(() => server.stats.completed === 3);
    } finally {
      noisy.close();
    }
  });

  it('logs through the injected pino-style logger (child per transfer), and only there', async () => {
    const lines: { level: string; bindings: object; obj: object; msg?: string }[] = [];
    const make = (bindings: object): import('../src/index.js').TftpLogger => ({
      debug: (obj, msg) => lines.push({ level: 'debug', bindings, obj, msg }),
      info: (obj, msg) => lines.push({ level: 'info', bindings, obj, msg }),
      warn: (obj, msg) => lines.push({ level: 'warn', bindings, obj, msg }),
      error: (obj, msg) => lines.push({ level: 'error', bindings, obj, msg }),
      child: (more) => make({ ...bindings, ...more }),
    });
    const { port } = await startServer({ logger: make({ svc: 'tftp' }) });
    await tftpGet({ host: HOST, port, file: '9ffefdef/start4.elf', options: { tsize: '0' }, abortAfterOack: true });
    await tftpGet({ host: HOST, port, file: 'one.bin' });
    await until(() => lines.some((l) => l.msg === 'tftp: file served'));
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'tftp: listening' });
    const aborted = lines.find((l) => l.msg === 'tftp: client ended the transfer');
    // "Early terminate" is normal: debug level, with the transfer's bindings
    expect(aborted).toMatchObject({
      level: 'debug',
      bindings: { svc: 'tftp', serial: '9ffefdef', file: '9ffefdef/start4.elf' },
      obj: { code: 0, message: 'Early terminate' },
    });
    expect(lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });

  it('start() rejects when the port is taken; close() is idempotent and ends running transfers', async () => {
    const { server, port } = await startServer();
    const clash = new TftpServer({ address: HOST, port, source: new FileSource({ root }) });
    await expect(clash.start()).rejects.toMatchObject({ code: 'TFTP_BIND_FAILED' });
    await clash.close();
    const failed = record(server, 'transfer-failed');
    const peer = await RawPeer.open();
    peer.send({ type: 'rrq', filename: '300k.bin', mode: 'octet', options: {} }, port);
    await peer.next();
    await server.close();
    await server.close();
    expect(failed.map((f) => f.reason)).toEqual(['shutdown']);
    expect(server.stats.active).toBe(0);
    peer.close();
  });
}

/** Wraps a real UDP socket so that it drops, duplicates and delays (reorders) what it sends and receives. */
function lossySocketFactory(seed: number, loss: number, dup: number, jitterMs: number) {
  let state = seed;
  const random = () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  return (): UdpSocket => {
    const inner = createSocket('udp4');
    const scatter = (deliver: () => void) => {
      if (random() < loss) return;
      const copies = random() < dup ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        const delay = random() * jitterMs;
        if (delay < 0.2) deliver();
        else setTimeout(deliver, delay);
      }
    };
    const wrapper = {
      bind: (port: number, address: string, cb: () => void) => inner.bind(port, address, cb),
      send: (msg: Uint8Array | readonly Uint8Array[], port: number, address: string, cb?: (e: Error | null) => void) => {
        const bytes = Buffer.concat(Array.isArray(msg) ? (msg as Uint8Array[]) : [msg as Uint8Array]);
        scatter(() => {
          try {
            inner.send(bytes, port, address, () => undefined);
          } catch {
            // a delayed copy outlived its socket: lost, like on a real network
          }
        });
        cb?.(null);
      },
      on: (event: string, listener: (...args: never[]) => void) => {
        if (event === 'message') inner.on('message', (m, r) => scatter(() => (listener as (m: Buffer, r: RemoteInfo) => void)(m, r)));
        else inner.on(event, listener as () => void);
        return wrapper;
      },
      once: (event: string, listener: (e: Error) => void) => inner.once(event, listener),
      off: (event: string, listener: (e: Error) => void) => inner.off(event, listener),
      address: () => inner.address(),
      close: (cb?: () => void) => inner.close(cb),
    };
    return wrapper as unknown as UdpSocket;
  };
}

describe('TftpServer through a lossy, duplicating, reordering socket', () => {
  it.each([
    ['lock-step', { blksize: '1468', tsize: '0' }],
    ['windowsize 8', { blksize: '1024', windowsize: '8' }],
  ])(
    '%s: every transfer byte-exact',
    async (_name, options) => {
      const { server, port } = await startServer({
        timeoutMs: 30,
        maxTimeoutMs: 120,
        maxRetries: 20,
        socketFactory: lossySocketFactory(7, 0.05, 0.05, 3),
      });
      const results = await Promise.all(
        Array.from({ length: 6 }, () =>
          tftpGet({ host: HOST, port, file: '300k.bin', options, keep: true, timeoutMs: 60, retries: 30, totalTimeoutMs: 20_000 }),
        ),
      );
      for (const r of results) {
        expect(r.ok).toBe(true);
        expect(Buffer.compare(r.data!, files['300k.bin']!)).toBe(0);
      }
      await until(() => server.stats.completed + server.stats.failed === 6, 5000);
      expect(server.stats.retransmits).toBeGreaterThan(0);
    },
    30_000,
  );
});

describe('TftpServer in single-port mode', () => {
  it.each([
    ['lock-step', { blksize: '1468', tsize: '0' }],
    ['windowsize 16', { blksize: '1468', windowsize: '16' }],
    ['no options', {}],
  ])('%s: parallel transfers from one IP are answered from port 69-equivalent and byte-exact', async (_name, options) => {
    const { server, port } = await startServer({ singlePort: true });
    const results = await Promise.all([0, 1, 2].map(() => tftpGet({ host: HOST, port, file: '300k.bin', options, keep: true })));
    for (const r of results) {
      expect(r.serverPort).toBe(port);
      expect(Buffer.compare(r.data!, files['300k.bin']!)).toBe(0);
    }
    await until(() => server.stats.completed === 3);
  });

  it('handles probes, missing files, duplicate RRQs and strangers on the shared port', async () => {
    const { server, port } = await startServer({ singlePort: true });
    const aborted = record(server, 'transfer-aborted');
    const probe = await tftpGet({
      host: HOST,
      port,
      file: '9ffefdef/start4.elf',
      options: { tsize: '0', blksize: '1468' },
      abortAfterOack: true,
    });
    expect(probe.oack).toEqual({ tsize: '100000', blksize: '1468' });
    await until(() => aborted.length === 1);
    const missing = await tftpGet({ host: HOST, port, file: 'nope.bin', retries: 0, timeoutMs: 2000 });
    expect(missing).toMatchObject({ error: { code: 1 }, serverPort: port });

    const peer = await RawPeer.open();
    const stranger = await RawPeer.open();
    try {
      const rrq = { type: 'rrq', filename: '1468x3.bin', mode: 'octet', options: {} } as const;
      peer.send(rrq, port);
      expect(await peer.next()).toMatchObject({ packet: { type: 'data', block: 1 }, port });
      peer.send(rrq, port);
      stranger.send({ type: 'ack', block: 1 }, port);
      expect((await stranger.next())?.packet).toMatchObject({ type: 'error', code: 5 });
      peer.send({ type: 'ack', block: 1 }, port);
      expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 2 });
      expect(peer.inbox).toEqual([]);
      expect(server.stats.active).toBe(1);
    } finally {
      peer.close();
      stranger.close();
    }
  });
});
