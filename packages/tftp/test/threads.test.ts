import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { FileSource, fromNetascii, TftpServer } from '../src/index.js';
import type { FileSourceOptions, TftpLogger, TftpServerOptions, UdpSocket } from '../src/index.js';
import { TransferThread } from '../src/worker-proxy.js';
import type { TransferHost } from '../src/transfer-io.js';
import { needs } from '@iot-tofu/test-kit';
import { tftpGet } from './client.js';
import { HOST, RawPeer, receiveWhileStrangersPoke, record, until } from './loopback.js';

/**
 * Transfer threads on loopback, with real sockets and real clients. The main thread is one lane
 * too and wins ties, so a test that needs a transfer on a worker first parks a netascii transfer
 * (always main) on the main lane: the next cached octet transfer then goes to a thread, which
 * `stats.threaded` confirms.
 */
const SERIAL = '9ffefdef';

let dir: string;
let root: string;
const files: Record<string, Buffer> = {};
const servers: TftpServer[] = [];
const peers: RawPeer[] = [];

async function startServer(
  options: Partial<TftpServerOptions> = {},
  source: Partial<FileSourceOptions> = {},
): Promise<{ server: TftpServer; port: number }> {
  const server = new TftpServer({
    address: HOST,
    port: 0,
    threads: 2,
    source: new FileSource({ root, isRegistered: (s) => s === SERIAL, ...source }),
    ...options,
  });
  servers.push(server);
  const { port } = await server.start();
  return { server, port };
}

async function openPeer(): Promise<RawPeer> {
  const peer = await RawPeer.open();
  peers.push(peer);
  return peer;
}

/**
 * Starts a transfer that stays on the main lane until the server closes: netascii never runs on
 * a thread, and this peer never ACKs (the server's timeout keeps it alive meanwhile).
 */
async function parkOnMain(port: number): Promise<RawPeer> {
  const peer = await openPeer();
  peer.send({ type: 'rrq', filename: 'text.txt', mode: 'netascii', options: {} }, port);
  expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 1 });
  return peer;
}

/** A peer that requests a file and stops after the first DATA: the transfer stays running. */
async function stalledTransfer(port: number, file = '300k.bin'): Promise<RawPeer> {
  const peer = await openPeer();
  peer.send({ type: 'rrq', filename: file, mode: 'octet', options: {} }, port);
  expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 1 });
  return peer;
}

/**
 * Timeouts for tests that assert `retries: 0`: a fixed 10 s retransmission timeout instead of the
 * adaptive one (30 ms floor). The assertion then says what the server guarantees, that it never
 * retransmits while ACKs keep coming, and no load short of a 10 s stall can make it false; how
 * fast retransmissions come under load is the benchmark's business (bench:tftp).
 */
const PATIENT: Partial<TftpServerOptions> = { adaptiveTimeout: false, timeoutMs: 10_000, maxTimeoutMs: 10_000 };

/** The worker behind a transfer thread: private, reached by a cast only to simulate a crash. */
function workerOf(server: TftpServer, index: number): Worker {
  return (server as unknown as { threads: { worker: Worker }[] }).threads[index]!.worker;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tofu-tftp-threads-'));
  root = join(dir, 'root');
  mkdirSync(join(root, 'base'), { recursive: true });
  const add = (name: string, data: Buffer) => {
    files[name] = data;
    writeFileSync(join(root, name), data);
  };
  add('one.bin', Buffer.from('x'));
  add('1468x3.bin', randomBytes(1468 * 3));
  add('300k.bin', randomBytes(300_000));
  add('1m.bin', randomBytes(1_000_000));
  add('10m.bin', randomBytes(10_000_000));
  add('base/start4.elf', randomBytes(100_000));
  add('text.txt', Buffer.from('line one\nline two\r\nbare\rcr\n'));
});
afterEach(async () => {
  for (const peer of peers.splice(0)) peer.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('TftpServer with transfer threads (loopback)', () => {
  it('serves many concurrent downloads of cached files byte-exact; events and stats arrive on the main thread', async () => {
    const { server, port } = await startServer({ threads: 2, ...PATIENT });
    expect(server.stats.threads).toBe(2);
    const started = record(server, 'transfer-started');
    const served = record(server, 'file-served');
    const requests = Array.from({ length: 24 }, (_v, i) => {
      const [file, options] = [
        [`${SERIAL}/start4.elf`, { tsize: '0', blksize: '1468' }],
        ['300k.bin', {}],
        ['300k.bin', { blksize: '1024', windowsize: '8' }],
        ['1468x3.bin', { blksize: '1468' }],
      ][i % 4] as [string, Record<string, string>];
      return { file, options };
    });
    const results = await Promise.all(requests.map(({ file, options }) => tftpGet({ host: HOST, port, file, options, keep: true })));
    results.forEach((result, i) => {
      const expected = files[requests[i]!.file.replace(`${SERIAL}/`, 'base/')]!;
      expect(result.ok, requests[i]!.file).toBe(true);
      expect(Buffer.compare(result.data!, expected)).toBe(0);
    });
    await until(() => served.length === requests.length);
    const total = requests.reduce((sum, { file }) => sum + files[file.replace(`${SERIAL}/`, 'base/')]!.length, 0);
    expect(started).toHaveLength(requests.length);
    const pi = served.filter((e) => e.serial === SERIAL);
    expect(pi).toHaveLength(6);
    for (const event of pi) {
      expect(event).toMatchObject({
        file: `${SERIAL}/start4.elf`,
        serial: SERIAL,
        origin: 'shared',
        size: 100_000,
        bytes: 100_000,
        retries: 0,
        tsize: 100_000,
        blksize: 1468,
      });
    }
    for (const event of served.filter((e) => e.file === '300k.bin' && e.windowsize === 8))
      expect(event).toMatchObject({ size: 300_000, bytes: 300_000, blksize: 1024 });
    for (const event of served) expect(event.bytes).toBe(event.size);
    expect(new Set(served.map((e) => e.id)).size).toBe(requests.length);
    expect(server.stats).toMatchObject({
      threads: 2,
      active: 0,
      queued: 0,
      started: requests.length,
      completed: requests.length,
      failed: 0,
      bytesSent: total,
    });
    // 24 at once over three lanes: the threads must have taken a share.
    expect(server.stats.threaded).toBeGreaterThan(0);
  });

  it('queues threaded transfers past maxConcurrent and starts them on their threads later', async () => {
    const { server, port } = await startServer({ threads: 2, maxConcurrent: 2 });
    let peakQueued = 0;
    server.on('transfer-started', () => (peakQueued = Math.max(peakQueued, server.stats.queued)));
    const results = await Promise.all(
      Array.from({ length: 10 }, () => tftpGet({ host: HOST, port, file: '300k.bin', options: { blksize: '1468' }, keep: true })),
    );
    for (const result of results) expect(Buffer.compare(result.data!, files['300k.bin']!)).toBe(0);
    await until(() => server.stats.completed === 10);
    expect(peakQueued).toBeGreaterThan(0);
    expect(server.stats).toMatchObject({ active: 0, queued: 0, failed: 0, bytesSent: 3_000_000 });
    expect(server.stats.threaded).toBeGreaterThan(0);
  });

  it('runs streamed, provider-generated and netascii bodies on the main thread, byte-exact', async () => {
    const providers = [(request: { file: string }) => (request.file === 'generated.txt' ? 'made for you\n'.repeat(200) : undefined)];
    const { server, port } = await startServer({ threads: 2 }, { providers });
    const netascii = await tftpGet({ host: HOST, port, file: 'text.txt', mode: 'netascii', keep: true });
    expect(netascii.data!.toString('latin1')).toBe('line one\r\nline two\r\0\r\nbare\r\0cr\r\n');
    expect(Buffer.from(fromNetascii(netascii.data!))).toEqual(files['text.txt']);
    const generated = await tftpGet({ host: HOST, port, file: 'generated.txt', options: { blksize: '1468' }, keep: true });
    expect(generated.data!.toString()).toBe('made for you\n'.repeat(200));
    // Parallel requests: with a busy main lane a shareable body would go to a thread.
    const both = await Promise.all([1, 2, 3].map(() => tftpGet({ host: HOST, port, file: 'generated.txt', keep: true })));
    for (const result of both) expect(result.data!.toString()).toBe('made for you\n'.repeat(200));
    await until(() => server.stats.completed === 5);
    expect(server.stats.threaded).toBe(0);
    // The same server does hand a cached octet body to a thread once the main lane is busy.
    await parkOnMain(port);
    const cached = await tftpGet({ host: HOST, port, file: '300k.bin', keep: true });
    expect(Buffer.compare(cached.data!, files['300k.bin']!)).toBe(0);
    expect(server.stats.threaded).toBe(1);

    const streamed = await startServer({ threads: 2 }, { cacheMaxBytes: 0 });
    await parkOnMain(streamed.port);
    const results = await Promise.all(
      [1, 2, 3].map(() => tftpGet({ host: HOST, port: streamed.port, file: '1m.bin', options: { blksize: '1468' }, keep: true })),
    );
    for (const result of results) expect(Buffer.compare(result.data!, files['1m.bin']!)).toBe(0);
    await until(() => streamed.server.stats.completed === 3);
    expect(streamed.server.stats.threaded).toBe(0);
  });

  it("a stranger on a threaded transfer's TID gets ERROR 5 from that port; the transfer completes", async () => {
    const { server, port } = await startServer({ threads: 1, ...PATIENT });
    const served = record(server, 'file-served');
    const dropped = record(server, 'packet-dropped');
    await parkOnMain(port);
    const peer = await openPeer();
    const stranger = await openPeer();
    peer.send({ type: 'rrq', filename: '1468x3.bin', mode: 'octet', options: { blksize: '1468' } }, port);
    const oack = await peer.next();
    expect(oack?.packet).toMatchObject({ type: 'oack', options: { blksize: '1468' } });
    expect(server.stats.threaded).toBe(1);
    peer.send({ type: 'ack', block: 0 }, oack!.port);
    const received = await receiveWhileStrangersPoke(peer, stranger, oack!.port, 4);
    expect(Buffer.compare(received, files['1468x3.bin']!)).toBe(0);
    await until(() => served.length === 1);
    expect(served[0]).toMatchObject({ file: '1468x3.bin', bytes: 1468 * 3, retries: 0 });
    expect(dropped.filter((d) => d.reason === 'foreign-tid')).toHaveLength(4);
    expect(server.stats).toMatchObject({ completed: 1, active: 1 });
  });

  it('a client ERROR mid-transfer is reported as transfer-aborted; a vanished client as transfer-failed timeout', async () => {
    // 500 ms timeouts: the parked transfer must outlive the start of the next one (else that one
    // takes the free main lane), which a loaded machine can delay by a good part of a second.
    const { server, port } = await startServer({ threads: 1, timeoutMs: 500, maxTimeoutMs: 500, maxRetries: 2 });
    const aborted = record(server, 'transfer-aborted');
    const failed = record(server, 'transfer-failed');
    // The parked transfer times out too (after a few seconds): it is told apart by its file.
    await parkOnMain(port);
    // Aborts on receiving block 3, so two blocks were acknowledged.
    const early = await tftpGet({ host: HOST, port, file: '300k.bin', options: { blksize: '1024' }, abortAfterBlocks: 3 });
    expect(early.ok).toBe(true);
    await until(() => aborted.length === 1);
    expect(aborted[0]).toMatchObject({
      file: '300k.bin',
      reason: 'client-abort',
      code: 0,
      message: 'Early terminate',
      bytes: 2 * 1024,
      blksize: 1024,
    });
    expect(server.stats.threaded).toBe(1);

    await until(() => failed.some((f) => f.file === 'text.txt') && server.stats.active === 0, 15_000);
    await parkOnMain(port);
    const peer = await openPeer();
    peer.send({ type: 'rrq', filename: '1468x3.bin', mode: 'octet', options: {} }, port);
    expect((await peer.next())?.packet).toMatchObject({ type: 'data', block: 1 });
    expect(server.stats.threaded).toBe(2);
    peer.close();
    await until(() => failed.some((f) => f.file === '1468x3.bin'), 15_000);
    expect(failed.find((f) => f.file === '1468x3.bin')).toMatchObject({ reason: 'timeout', client: { address: HOST } });
    expect(server.stats.aborted).toBe(1);
  });

  it('close() ends every threaded transfer as failed (shutdown), promptly; a second close is a no-op', async () => {
    const { server, port } = await startServer({ threads: 2, timeoutMs: 5000 });
    const failed = record(server, 'transfer-failed');
    await parkOnMain(port);
    // Lanes: main 1, threads 0 → thread, thread, then ties go to main, then threads again.
    for (let i = 0; i < 5; i++) await stalledTransfer(port);
    expect(server.stats).toMatchObject({ active: 6, threads: 2 });
    expect(server.stats.threaded).toBeGreaterThanOrEqual(3);
    const closing = Date.now();
    await server.close();
    expect(Date.now() - closing).toBeLessThan(1000);
    expect(failed.map((f) => f.reason)).toEqual(Array(6).fill('shutdown'));
    expect(new Set(failed.map((f) => f.id)).size).toBe(6);
    expect(server.stats).toMatchObject({ active: 0, queued: 0, threads: 0, failed: 6 });
    await server.close();
    expect(failed).toHaveLength(6);
  });

  it('close() while start() waits for its workers stops them; start() rejects TFTP_CLOSED', async () => {
    const server = new TftpServer({ address: HOST, port: 0, threads: 2, source: new FileSource({ root }) });
    const starting = server.start();
    // Let the listening socket bind; the workers are still loading.
    await new Promise((r) => setTimeout(r, 20));
    await server.close();
    await expect(starting).rejects.toMatchObject({ code: 'TFTP_CLOSED' });
    expect(server.stats.threads).toBe(0);
    const workers = (server as unknown as { threads: unknown[] }).threads;
    expect(workers).toHaveLength(0);
  });

  it('close() does not wait forever for a worker that never confirms: its transfers end as shutdown', async () => {
    const { server, port } = await startServer({ threads: 1, timeoutMs: 5000 });
    const failed = record(server, 'transfer-failed');
    await parkOnMain(port);
    await stalledTransfer(port);
    expect(server.stats.threaded).toBe(1);
    // A stuck worker: the stop request never reaches it (reached by a cast; nothing else can wedge one).
    const thread = (server as unknown as { threads: { post: (m: unknown) => void }[] }).threads[0]!;
    thread.post = () => undefined;
    const closing = Date.now();
    await server.close();
    expect(Date.now() - closing).toBeLessThan(5000);
    expect(failed.map((f) => f.reason)).toEqual(['shutdown', 'shutdown']);
    expect(server.stats).toMatchObject({ active: 0, threads: 0 });
  });

  it('answers refused requests from one port of its own, not the listening port', async () => {
    const { port } = await startServer({ threads: 1 });
    const peer = await openPeer();
    peer.send({ type: 'rrq', filename: 'missing-1.bin', mode: 'octet', options: {} }, port);
    const first = await peer.next();
    peer.send({ type: 'rrq', filename: 'missing-2.bin', mode: 'octet', options: {} }, port);
    const second = await peer.next();
    expect(first?.packet).toMatchObject({ type: 'error', code: 1 });
    expect(second?.packet).toMatchObject({ type: 'error', code: 1 });
    expect(first!.port).not.toBe(port);
    expect(second!.port).toBe(first!.port);
  });

  it('a transfer thread that dies fails its transfers (io-error); new transfers complete on the other lanes', async () => {
    const errors: string[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (_o: object, msg?: string) => void errors.push(msg ?? ''),
    };
    const { server, port } = await startServer({ threads: 2, timeoutMs: 5000, logger });
    const failed = record(server, 'transfer-failed');
    await parkOnMain(port);
    await stalledTransfer(port);
    await stalledTransfer(port);
    expect(server.stats.threaded).toBe(2);
    // Each thread has one transfer now. Simulate a crash of the first worker.
    await workerOf(server, 0).terminate();
    await until(() => failed.length === 1);
    expect(failed[0]).toMatchObject({ file: '300k.bin', reason: 'io-error' });
    expect(server.stats).toMatchObject({ threads: 1, active: 2 });
    expect(errors).toEqual([expect.stringMatching(/transfer thread 1 exited/)]);
    const results = await Promise.all(
      Array.from({ length: 6 }, () => tftpGet({ host: HOST, port, file: '300k.bin', options: { blksize: '1468' }, keep: true })),
    );
    for (const result of results) expect(Buffer.compare(result.data!, files['300k.bin']!)).toBe(0);
    await until(() => server.stats.completed === 6);
    expect(server.stats.threads).toBe(1);
    expect(failed).toHaveLength(1);
  });

  it("a threaded transfer's round trip reaches the main thread: the next transfer to that IP starts from it", async () => {
    const { server, port } = await startServer({ threads: 1, timeoutMs: 3000, minTimeoutMs: 30 });
    await parkOnMain(port);
    const first = await tftpGet({ host: HOST, port, file: 'one.bin', options: { blksize: '1468' }, timeoutMs: 2000 });
    expect(first.ok).toBe(true);
    // Active back to the parked one: the worker's report of the end arrived (the thread is idle).
    await until(() => server.stats.completed === 1 && server.stats.active === 1);
    expect(server.stats.threaded).toBe(1);
    const peer = await openPeer();
    // No options, so no OACK (which always waits the full timeout): DATA 1 comes at once.
    peer.send({ type: 'rrq', filename: '300k.bin', mode: 'octet', options: {} }, port);
    expect((await peer.next())?.packet.type).toBe('data');
    const started = Date.now();
    // Unanswered DATA 1: resent after the remembered round trip's timeout (the floor), not 3 s.
    expect((await peer.next(2000))?.packet.type).toBe('data');
    expect(Date.now() - started).toBeLessThan(1000);
    // This one ran on the thread as well: the estimate crossed to the worker and back.
    expect(server.stats.threaded).toBe(2);
  });

  it("log lines of a threaded transfer reach the injected logger, through the transfer's child logger", async () => {
    const lines: { level: string; bindings: object; obj: object; msg?: string }[] = [];
    const make = (bindings: object): TftpLogger => ({
      debug: (obj, msg) => lines.push({ level: 'debug', bindings, obj, msg }),
      info: (obj, msg) => lines.push({ level: 'info', bindings, obj, msg }),
      warn: (obj, msg) => lines.push({ level: 'warn', bindings, obj, msg }),
      error: (obj, msg) => lines.push({ level: 'error', bindings, obj, msg }),
      child: (more) => make({ ...bindings, ...more }),
    });
    const { server, port } = await startServer({ threads: 1, logger: make({ svc: 'tftp' }) });
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'tftp: listening', obj: { threads: 1 } });
    await parkOnMain(port);
    await tftpGet({ host: HOST, port, file: `${SERIAL}/start4.elf`, options: { tsize: '0' }, abortAfterOack: true });
    await until(() => lines.some((l) => l.msg === 'tftp: client ended the transfer'));
    expect(server.stats.threaded).toBe(1);
    const aborted = lines.find((l) => l.msg === 'tftp: client ended the transfer');
    expect(aborted).toMatchObject({
      level: 'debug',
      bindings: { svc: 'tftp', serial: SERIAL, file: `${SERIAL}/start4.elf` },
      obj: { code: 0, message: 'Early terminate' },
    });
    expect(lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });

  it('a transfer thread whose worker is gone before it is ready rejects ready() at once (no 30 s wait)', async () => {
    const errors: string[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (_o: object, msg?: string) => void errors.push(msg ?? ''),
    };
    const settings = {
      address: HOST,
      timeoutMs: 1000,
      maxTimeoutMs: 5000,
      minTimeoutMs: 30,
      maxRetries: 5,
      maxTransferMs: 60_000,
      nativeSockets: false,
      requestRate: { perSecond: 50, burst: 100 },
    };
    // Nothing is assigned to it, so the host is never called.
    const thread = new TransferThread(1, settings, {} as TransferHost, logger);
    const began = Date.now();
    await (thread as unknown as { worker: Worker }).worker.terminate();
    await expect(thread.ready()).rejects.toThrow(/before it was ready/);
    expect(Date.now() - began).toBeLessThan(3000);
    expect(thread.usable).toBe(false);
    expect(errors).toHaveLength(1);
  }, 5000);

  it('runs without threads in single-port mode (one socket cannot be split across threads)', async () => {
    const { server, port } = await startServer({ threads: 2, singlePort: true });
    expect(server.stats.threads).toBe(0);
    await parkOnMain(port);
    const result = await tftpGet({ host: HOST, port, file: '300k.bin', options: { blksize: '1468' }, keep: true });
    expect(Buffer.compare(result.data!, files['300k.bin']!)).toBe(0);
    expect(result.serverPort).toBe(port);
    expect(server.stats.threaded).toBe(0);
  });

  it('validates the threads option', () => {
    const source = new FileSource({ root: dir });
    for (const threads of [-1, 1.5, Number.NaN]) {
      expect(() => new TftpServer({ source, threads })).toThrow(
        expect.objectContaining({ code: 'TFTP_BAD_OPTION', message: expect.stringMatching(/threads/) }),
      );
    }
    const socketFactory = (): UdpSocket => createSocket('udp4') as unknown as UdpSocket;
    expect(() => new TftpServer({ source, threads: 1, socketFactory })).toThrow(expect.objectContaining({ code: 'TFTP_BAD_OPTION' }));
    expect(() => new TftpServer({ source, threads: 1, clock: { now: () => 0, setTimeout, clearTimeout } as never })).toThrow(
      expect.objectContaining({ code: 'TFTP_BAD_OPTION' }),
    );
    expect(() => new TftpServer({ source, threads: 0, socketFactory })).not.toThrow();
  });
});

function curl(url: string, dest: string): Promise<number> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--tftp-blksize', '1468', '-o', dest, url], { timeout: 20_000, killSignal: 'SIGKILL' }, (error) =>
      resolve(error ? Number((error as { code?: unknown }).code ?? -1) : 0),
    );
  });
}

/** Blocks this (the main) thread: nothing on it runs meanwhile, transfer threads do. */
function blockMainThread(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('transfer threads really run transfers off the main thread', needs('curl'), () => {
  it('curl finishes a threaded download while the main thread is blocked; a main-lane download does not', async () => {
    // Threaded: the main lane is busy with a parked transfer, so curl's download goes to the worker.
    const { server, port } = await startServer({ threads: 1 });
    const started = record(server, 'transfer-started');
    await parkOnMain(port);
    const dest = join(dir, 'threaded.bin');
    const done = curl(`tftp://${HOST}:${port}/300k.bin`, dest);
    await until(() => started.length === 2, 5000);
    expect(server.stats.threaded).toBe(1);
    blockMainThread(2000);
    // Checked before the event loop runs again: the worker alone served the whole file.
    expect(statSync(dest, { throwIfNoEntry: false })?.size).toBe(files['300k.bin']!.length);
    expect(await done).toBe(0);

    // Control, same procedure on the main lane (no parked transfer, threads tie → main). A bigger
    // file (~0.4 s on loopback): 300k could finish on main before the start event is even polled.
    const control = await startServer({ threads: 1 });
    const controlStarted = record(control.server, 'transfer-started');
    const controlDest = join(dir, 'main.bin');
    const controlDone = curl(`tftp://${HOST}:${control.port}/10m.bin`, controlDest);
    await until(() => controlStarted.length === 1, 5000);
    expect(control.server.stats.threaded).toBe(0);
    blockMainThread(500);
    expect(statSync(controlDest, { throwIfNoEntry: false })?.size ?? 0).toBeLessThan(files['10m.bin']!.length);
    expect(await controlDone).toBe(0);
  });
});
