/**
 * The native transfer socket inside the server (issue 14): transfers really run on it by default,
 * the addon's own failures fall back to node:dgram, and the switches say what they do. The raw
 * socket API on both prebuilt binaries (x64 here, arm64 under qemu) is prebuilt.test.ts's.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { needs } from '@iot-tofu/test-kit';
import { FileSource, TftpServer } from '../src/index.js';
import type { TftpServerOptions } from '../src/index.js';
import { NATIVE_ENV, nativeSocketStatus, prebuiltPath, transferSocketAddon } from '../src/native-socket.js';
import type { TransferSocketAddon } from '../src/native-socket.js';
import { tftpGet } from './client.js';
import { HOST, RawPeer, record, until } from './loopback.js';

let dir: string;
let root: string;
const payload = randomBytes(1468 * 40 + 17);
const servers: TftpServer[] = [];

async function startServer(options: Partial<TftpServerOptions> = {}): Promise<{ server: TftpServer; port: number }> {
  const server = new TftpServer({ address: HOST, port: 0, source: new FileSource({ root }), ...options });
  servers.push(server);
  const { port } = await server.start();
  return { server, port };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tofu-tftp-native-'));
  root = join(dir, 'root');
  mkdirSync(root);
  writeFileSync(join(root, 'file.bin'), payload);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A raw client that asked for file.bin and got DATA 1; `tid` is the transfer's port. */
async function firstBlock(port: number): Promise<{ peer: RawPeer; tid: number }> {
  const peer = await RawPeer.open();
  peer.send({ type: 'rrq', filename: 'file.bin', mode: 'octet', options: {} }, port);
  const first = await peer.next();
  expect(first?.packet).toMatchObject({ type: 'data', block: 1 });
  return { peer, tid: first!.port };
}

describe('the native transfer socket in TftpServer', needs(prebuiltPath()), () => {
  let addon: TransferSocketAddon;
  beforeAll(() => {
    expect(nativeSocketStatus()).toEqual({ loaded: true, path: prebuiltPath() });
    addon = transferSocketAddon()!;
  });

  it('runs every transfer on it by default: one native socket per transfer, one sendData per DATA block', async () => {
    const open = vi.spyOn(addon, 'open');
    const sendData = vi.spyOn(addon, 'sendData');
    const close = vi.spyOn(addon, 'close');
    const { server, port } = await startServer();
    expect(server.transferSockets).toBe('native');
    const results = await Promise.all(
      ([{ blksize: '1468', tsize: '0' }, {}] as Record<string, string>[]).map((options) =>
        tftpGet({ host: HOST, port, file: 'file.bin', options, keep: true }),
      ),
    );
    for (const result of results) expect(Buffer.compare(result.data!, payload)).toBe(0);
    await until(() => server.stats.completed === 2);
    expect(open).toHaveBeenCalledTimes(2);
    expect(close).toHaveBeenCalledTimes(2);
    // 41 blocks at 1468, 115 at 512; a retransmission on a loaded machine may add a few.
    expect(sendData.mock.calls.length).toBeGreaterThanOrEqual(41 + 115);
    expect(sendData.mock.calls.length).toBeLessThan(41 + 115 + 20);
  });

  it('nativeSockets: false keeps node:dgram', async () => {
    const open = vi.spyOn(addon, 'open');
    const { server, port } = await startServer({ nativeSockets: false });
    expect(server.transferSockets).toBe('node:dgram');
    const result = await tftpGet({ host: HOST, port, file: 'file.bin', options: { blksize: '1468' }, keep: true });
    expect(Buffer.compare(result.data!, payload)).toBe(0);
    await until(() => server.stats.completed === 1);
    expect(open).not.toHaveBeenCalled();
  });

  it('a native socket that cannot open falls back to node:dgram for that transfer, quietly', async () => {
    vi.spyOn(addon, 'open').mockImplementation(() => {
      throw Object.assign(new Error('EMFILE: too many open files'), { code: 'ERR_TFTP_NATIVE' });
    });
    const logged: string[] = [];
    const log = (level: string) => (_o: object, msg?: string) => void logged.push(`${level} ${msg}`);
    const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
    const { server, port } = await startServer({ logger });
    const result = await tftpGet({ host: HOST, port, file: 'file.bin', options: { blksize: '1468' }, keep: true });
    expect(Buffer.compare(result.data!, payload)).toBe(0);
    await until(() => server.stats.completed === 1);
    expect(logged).toContain('debug tftp: no native transfer socket, using node:dgram');
  });

  it('a native socket that cannot connect is closed and the transfer runs on node:dgram', async () => {
    const close = vi.spyOn(addon, 'close');
    vi.spyOn(addon, 'connect').mockReturnValue(22); // EINVAL
    const { server, port } = await startServer();
    const result = await tftpGet({ host: HOST, port, file: 'file.bin', keep: true });
    expect(Buffer.compare(result.data!, payload)).toBe(0);
    await until(() => server.stats.completed === 1);
    expect(close).toHaveBeenCalledTimes(1);
  });

  it('a client ERROR and garbage reach the transfer through the native socket', async () => {
    const { server, port } = await startServer();
    const aborted = record(server, 'transfer-aborted');
    const dropped = record(server, 'packet-dropped');
    const { peer, tid } = await firstBlock(port);
    try {
      peer.send(Uint8Array.of(0, 9, 1, 2, 3), tid); // unknown opcode
      peer.send(Uint8Array.of(0, 3, 0, 1), tid); // a DATA to a reading server
      peer.send({ type: 'error', code: 0, message: 'stop' }, tid);
      await until(() => aborted.length === 1);
      expect(aborted[0]).toMatchObject({ reason: 'client-abort', message: 'stop' });
      expect(dropped.map((d) => d.reason)).toEqual(['malformed', 'unexpected-opcode']);
    } finally {
      peer.close();
    }
  });

  it('a full socket buffer (EAGAIN) queues the rest of the window until the socket is writable again', async () => {
    // Loopback frees a socket's buffers at once, so EAGAIN cannot happen here for real: the addon's
    // sendData answers it for every 7th block, first try (nothing sent), and awaitWritable's event
    // comes from a timer. The real awaitWritable is the next test's.
    const original = { open: addon.open, sendData: addon.sendData };
    let listener: ((kind: number, value: number | Buffer | undefined) => void) | undefined;
    vi.spyOn(addon, 'open').mockImplementation((address, onEvent) => {
      listener = onEvent;
      return original.open.call(addon, address, onEvent);
    });
    const refused = new Set<number>();
    vi.spyOn(addon, 'sendData').mockImplementation((handle, block, bytes) => {
      if (block % 7 === 0 && !refused.has(block)) {
        refused.add(block);
        return 11; // EAGAIN
      }
      return original.sendData.call(addon, handle, block, bytes);
    });
    const awaitWritable = vi.spyOn(addon, 'awaitWritable').mockImplementation(() => void setTimeout(() => listener?.(3, undefined), 2));
    const { server, port } = await startServer();
    const result = await tftpGet({ host: HOST, port, file: 'file.bin', options: { blksize: '1468', windowsize: '16' }, keep: true });
    expect(Buffer.compare(result.data!, payload)).toBe(0);
    await until(() => server.stats.completed === 1);
    expect(refused.size).toBeGreaterThanOrEqual(5); // blocks 7, 14, … 35 of 41
    expect(awaitWritable).toHaveBeenCalled();
    // Queued, not lost: no block had to wait for the retransmission timer.
    expect(server.stats.retransmits).toBe(0);
  });

  it('awaitWritable gives one WRITABLE event once the socket can send', async () => {
    const events: number[] = [];
    const [handle] = addon.open(HOST, (kind) => void events.push(kind));
    try {
      addon.awaitWritable(handle);
      addon.awaitWritable(handle); // asked twice, told once
      await until(() => events.length > 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(events).toEqual([3]);
    } finally {
      addon.close(handle);
    }
  });

  it('a client ERROR too long to read whole still ends the transfer with its code', async () => {
    const { server, port } = await startServer();
    const aborted = record(server, 'transfer-aborted');
    const { peer, tid } = await firstBlock(port);
    try {
      peer.send({ type: 'error', code: 3, message: 'x'.repeat(3000) }, tid);
      await until(() => aborted.length === 1);
      expect(aborted[0]).toMatchObject({ reason: 'client-abort', code: 3 });
    } finally {
      peer.close();
    }
  });

  it('the raw API refuses wrong arguments with a clear error and tolerates a second close', () => {
    expect(() => addon.open('not-an-ip', () => undefined)).toThrow(/IPv4 address/);
    expect(() => addon.open(HOST, 'not a function' as never)).toThrow(/a function/);
    expect(() => addon.sendData({} as never, 1, new Uint8Array(1))).toThrow(/sendData\(handle, block, bytes\)/);
    const [handle] = addon.open(HOST, () => undefined);
    addon.close(handle);
    addon.close(handle);
    expect(addon.sendData(handle, 1, new Uint8Array(1))).toBe(9); // EBADF: nothing is sent on a closed socket
  });
});

describe('switching the native socket off and on', () => {
  /** Runs `code` (an ES module body with @iot-tofu/tftp imported as `tftp`) in a fresh Node; its stdout. */
  const inChild = (env: NodeJS.ProcessEnv, code: string) =>
    execFileSync(
      process.execPath,
      ['--conditions=@iot-tofu/source', '--import', 'tsx', '--input-type=module', '-e', `import * as tftp from '@iot-tofu/tftp';\n${code}`],
      { env: { ...process.env, ...env }, encoding: 'utf8' },
    ).trim();

  it(`${NATIVE_ENV}=0 turns the default off, says so, and makes nativeSockets: true a bad option`, () => {
    const output = inChild(
      { [NATIVE_ENV]: '0' },
      `console.log(JSON.stringify(tftp.nativeSocketStatus()));
       try { new tftp.TftpServer({ source: new tftp.FileSource({ root: '/' }), nativeSockets: true }); console.log('accepted'); }
       catch (error) { console.log(error.code, error.message); }`,
    );
    expect(output.split('\n')).toEqual([
      JSON.stringify({ loaded: false, reason: `${NATIVE_ENV}=0` }),
      `TFTP_BAD_OPTION TftpServer option nativeSockets: ${NATIVE_ENV}=0`,
    ]);
  });

  it('nativeSockets: true with an injected socketFactory is a bad option', () => {
    const source = new FileSource({ root });
    // Without the addon the first check already refuses (the test above); with it, this one does.
    const expected = nativeSocketStatus().loaded
      ? 'TftpServer option nativeSockets cannot run on an injected socketFactory'
      : 'TftpServer option nativeSockets: ';
    expect(() => new TftpServer({ source, nativeSockets: true, socketFactory: () => ({}) as never })).toThrow(expected);
  });
});
