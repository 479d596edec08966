import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSource, TftpServer } from '@iot-tofu/tftp';
import type { TftpServerEvents } from '@iot-tofu/tftp';
import { needs } from '../needs.js';
import { parkOnMainLane } from './main-lane.js';
import type { ParkedTransfer } from './main-lane.js';

/**
 * Real Debian TFTP clients against our server, in-process on loopback (the clients take a port,
 * so no privileged port or namespace is needed). Each client runs as a child process with a
 * bounded timeout; the server keeps serving because the child is awaited asynchronously.
 */
function run(command: string, args: string[], cwd: string, timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const HOST = '127.0.0.1';

/**
 * Each suite runs twice: transfers on the main thread (threads 0), and on a transfer thread
 * (threads 1, with the main lane kept busy by a parked transfer so the thread gets every cached
 * file's download; the last test checks that it did).
 */
describe.each([{ threads: 0 }, { threads: 1 }])(
  'interop with Debian TFTP clients (loopback, threads: $threads)',
  needs('tftp', 'atftp', 'busybox', 'curl'),
  ({ threads }) => {
    let dir: string;
    let root: string;
    let out: string;
    let server: TftpServer;
    let port: number;
    let parked: ParkedTransfer | undefined;
    const served: TftpServerEvents['file-served'][0][] = [];
    const started: TftpServerEvents['transfer-started'][0][] = [];
    const content: Record<string, Buffer> = {};

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tofu-interop-'));
      root = join(dir, 'root');
      out = join(dir, 'out');
      mkdirSync(join(root, '9ffefdef'), { recursive: true });
      mkdirSync(out);
      content['big.bin'] = randomBytes(2_000_000);
      content['exact.bin'] = randomBytes(1468 * 100);
      content['9ffefdef/config.txt'] = Buffer.from('arm_64bit=1\nenable_uart=1\n');
      // Over 65535 blocks at blksize 8: the block number rolls over 65535 → 0 → 1.
      content['rollover.bin'] = randomBytes(65536 * 8 + 100);
      content['notes.txt'] = Buffer.from('first line\nsecond line\n\nlast line without newline');
      for (const [name, data] of Object.entries(content)) writeFileSync(join(root, name), data);
      writeFileSync(join(dir, 'secret.txt'), 'must never leave');
      server = new TftpServer({ address: HOST, port: 0, source: new FileSource({ root }), threads });
      ({ port } = await server.start());
      if (threads > 0) parked = await parkOnMainLane(HOST, port, 'notes.txt');
      server.on('file-served', (e) => served.push(e));
      server.on('transfer-started', (e) => started.push(e));
    });
    afterAll(async () => {
      await parked?.release();
      await server?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const fetched = (name: string) => readFileSync(join(out, name));
    const lastStarted = () => started.at(-1)!;

    it('tftp-hpa (RFC 1350, no options) gets a file byte-exact', async () => {
      const result = await run('tftp', ['-m', 'binary', HOST, String(port), '-c', 'get', 'big.bin', join(out, 'hpa.bin')], out);
      expect(result.code).toBe(0);
      expect(fetched('hpa.bin').equals(content['big.bin']!)).toBe(true);
      expect(lastStarted()).toMatchObject({ blksize: 512, windowsize: 1 });
    });

    it('tftp-hpa in netascii mode gets the text back unchanged', async () => {
      const result = await run('tftp', ['-m', 'ascii', HOST, String(port), '-c', 'get', 'notes.txt', join(out, 'notes.txt')], out);
      expect(result.code).toBe(0);
      expect(fetched('notes.txt').toString()).toBe(content['notes.txt']!.toString());
      expect(lastStarted()).toMatchObject({ mode: 'netascii', size: content['notes.txt']!.length + 3 });
    });

    it('tftp-hpa gets a serial-folder file', async () => {
      const result = await run('tftp', ['-m', 'binary', HOST, String(port), '-c', 'get', '9ffefdef/config.txt', join(out, 'cfg.txt')], out);
      expect(result.code).toBe(0);
      expect(fetched('cfg.txt').equals(content['9ffefdef/config.txt']!)).toBe(true);
      expect(lastStarted()).toMatchObject({ serial: '9ffefdef' });
    });

    it('atftp with tsize and blksize', async () => {
      const result = await run(
        'atftp',
        ['--option', 'tsize 0', '--option', 'blksize 1468', '-g', '-r', 'big.bin', '-l', join(out, 'atftp.bin'), HOST, String(port)],
        out,
      );
      expect(result.code).toBe(0);
      expect(fetched('atftp.bin').equals(content['big.bin']!)).toBe(true);
      expect(lastStarted()).toMatchObject({ blksize: 1468, tsize: 2_000_000 });
    });

    it('atftp with windowsize 16 (RFC 7440)', async () => {
      const result = await run(
        'atftp',
        [
          '--option',
          'blksize 1468',
          '--option',
          'windowsize 16',
          '-g',
          '-r',
          'big.bin',
          '-l',
          join(out, 'atftp-w.bin'),
          HOST,
          String(port),
        ],
        out,
      );
      expect(result.code, result.stderr).toBe(0);
      expect(fetched('atftp-w.bin').equals(content['big.bin']!)).toBe(true);
      expect(lastStarted()).toMatchObject({ blksize: 1468, windowsize: 16 });
    });

    it('atftp on a file that is an exact multiple of blksize (empty final block)', async () => {
      const result = await run(
        'atftp',
        ['--option', 'blksize 1468', '-g', '-r', 'exact.bin', '-l', join(out, 'exact.bin'), HOST, String(port)],
        out,
      );
      expect(result.code).toBe(0);
      expect(fetched('exact.bin').equals(content['exact.bin']!)).toBe(true);
    });

    it('busybox tftp -b 1468', async () => {
      const result = await run(
        'busybox',
        ['tftp', '-b', '1468', '-g', '-r', 'big.bin', '-l', join(out, 'bb.bin'), HOST, String(port)],
        out,
      );
      expect(result.code, result.stderr).toBe(0);
      expect(fetched('bb.bin').equals(content['big.bin']!)).toBe(true);
      expect(lastStarted()).toMatchObject({ blksize: 1468 });
    });

    it('curl --tftp-blksize (sends tsize, blksize and timeout)', async () => {
      const result = await run(
        'curl',
        ['-sS', '--tftp-blksize', '1468', '-o', join(out, 'curl.bin'), `tftp://${HOST}:${port}/big.bin`],
        out,
      );
      expect(result.code, result.stderr).toBe(0);
      expect(fetched('curl.bin').equals(content['big.bin']!)).toBe(true);
      expect(lastStarted()).toMatchObject({ blksize: 1468, tsize: 2_000_000 });
    });

    it('curl --tftp-no-options', async () => {
      const result = await run(
        'curl',
        ['-sS', '--tftp-no-options', '-o', join(out, 'curl-noopt.bin'), `tftp://${HOST}:${port}/big.bin`],
        out,
      );
      expect(result.code, result.stderr).toBe(0);
      expect(fetched('curl-noopt.bin').equals(content['big.bin']!)).toBe(true);
    });

    it('curl on a missing file gets TFTP error 1 (curl exit 68)', async () => {
      const result = await run('curl', ['-sS', '-v', '-o', join(out, 'missing.bin'), `tftp://${HOST}:${port}/nope.bin`], out);
      expect(result.code).toBe(68);
      expect(result.stderr).toMatch(/not found/i);
    });

    it.each([
      [
        'curl --path-as-is',
        (name: string, dest: string) => ['curl', ['-sS', '--path-as-is', '-o', dest, `tftp://${HOST}:${port}/${name}`]] as const,
      ],
      ['busybox', (name: string, dest: string) => ['busybox', ['tftp', '-g', '-r', name, '-l', dest, HOST, String(port)]] as const],
      ['atftp', (name: string, dest: string) => ['atftp', ['-g', '-r', name, '-l', dest, HOST, String(port)]] as const],
    ])('%s: traversal attempts never leave the root', async (_client, command) => {
      for (const [index, name] of [
        '../secret.txt',
        'a/../../secret.txt',
        '..%5csecret.txt',
        `..\\secret.txt`,
        `/${dir.slice(1)}/secret.txt`,
      ].entries()) {
        const dest = join(out, `trav-${_client.split(' ')[0]}-${index}`);
        const [cmd, args] = command(name, dest);
        const result = await run(cmd, [...args], out);
        expect(result.code, `${cmd} ${name}`).not.toBe(0);
        if (existsSync(dest)) expect(readFileSync(dest, 'utf8')).not.toContain('must never leave');
      }
    });

    // The block-number rollover (65536 lock-step blocks, the costliest case here) is the same
    // Transfer code on either lane: once, on the main thread, keeps the suite's wall time small.
    if (threads === 0) {
      it.each([
        ['curl', (dest: string) => ['curl', ['-sS', '--tftp-blksize', '8', '-o', dest, `tftp://${HOST}:${port}/rollover.bin`]] as const],
        [
          'atftp',
          (dest: string) => ['atftp', ['--option', 'blksize 8', '-g', '-r', 'rollover.bin', '-l', dest, HOST, String(port)]] as const,
        ],
      ])('%s: block number rollover on a file over 65535 blocks', async (name, command) => {
        const dest = join(out, `rollover-${name}.bin`);
        const [cmd, args] = command(dest);
        const result = await run(cmd, [...args], out, 30_000);
        expect(result.code, result.stderr).toBe(0);
        expect(readFileSync(dest).equals(content['rollover.bin']!)).toBe(true);
        expect(lastStarted()).toMatchObject({ blksize: 8, size: 65536 * 8 + 100 });
      });
    }

    it('every completed transfer reported bytes and duration', () => {
      expect(served.length).toBeGreaterThanOrEqual(8);
      for (const event of served) {
        expect(event.bytes).toBe(event.size);
        expect(event.durationMs).toBeGreaterThanOrEqual(0);
      }
    });

    it(`ran every octet download on ${threads > 0 ? 'the transfer thread' : 'the main thread'}`, () => {
      const octet = served.filter((event) => event.mode === 'octet').length;
      expect(octet).toBeGreaterThanOrEqual(8);
      expect(server.stats.threads).toBe(threads);
      // Not exactly all with threads: a transfer counts on its thread until the worker's report of
      // its end arrives, and a client that starts the next download first ties with main (main wins).
      if (threads > 0) expect(server.stats.threaded).toBeGreaterThanOrEqual(Math.ceil(octet / 2));
      else expect(server.stats.threaded).toBe(0);
    });
  },
);
