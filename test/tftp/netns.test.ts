import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';

/**
 * The server as its own process on the real port 69 inside a namespace with two addresses,
 * bound to the second one: every reply (OACK, DATA, ERROR) must come from that address, or the
 * clients, which only accept packets from the address they asked, never finish (checklist 36).
 * Runs with transfers on the main thread (threads 0) and on a transfer thread (threads 1: a parked
 * transfer keeps the main lane busy, so the worker's sockets must also answer from that address).
 */
const PRIMARY = '10.77.0.1';
const SERVER = '10.77.0.9';

describe.each([{ threads: 0 }, { threads: 1 }])(
  'TFTP server in a network namespace on port 69 (threads: $threads)',
  needs('netns', 'tftp', 'busybox', 'curl'),
  ({ threads }) => {
    let lab: Lab;
    let work: string;
    let server: ChildProcess;
    let output = '';
    const data = randomBytes(1_500_000);
    const sha = createHash('sha256').update(data).digest('hex');

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'tofu-netns-tftp-'));
      chmodSync(work, 0o755);
      mkdirSync(join(work, 'root', 'base'), { recursive: true });
      writeFileSync(join(work, 'root', 'base', 'start4.elf'), data);
      lab = await Lab.create([
        { name: 'srv', address: `${PRIMARY}/24` },
        { name: 'cli', address: '10.77.0.2/24' },
      ]);
      await lab.run('srv', 'ip', ['addr', 'add', `${SERVER}/24`, 'dev', 'eth0']);
      server = lab.spawn(
        'srv',
        process.execPath,
        [
          ...tsNodeArgs,
          join(repoRoot, 'bench/tftp/serve.ts'),
          '--root',
          join(work, 'root'),
          '--address',
          SERVER,
          '--port',
          '69',
          '--serial-registered',
          '9ffefdef',
          '--threads',
          String(threads),
        ],
        { cwd: repoRoot },
      );
      server.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      await waitForOutput(server, /listening/, 30_000);
      if (threads > 0) {
        const parker = lab.spawn(
          'cli',
          process.execPath,
          [...tsNodeArgs, join(repoRoot, 'test/tftp/main-lane.ts'), SERVER, '69', '9ffefdef/start4.elf'],
          { cwd: repoRoot },
        );
        await waitForOutput(parker, /parked/, 30_000);
      }
    }, 60_000);
    afterAll(async () => {
      await lab?.close();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it('our client gets a shared-folder file; every reply came from the bound address', async () => {
      const options = {
        host: SERVER,
        port: 69,
        file: '9ffefdef/start4.elf',
        options: { tsize: '0', blksize: '1468' },
        timeoutMs: 1000,
        retries: 3,
      };
      const result = await lab.run('cli', process.execPath, [...tsNodeArgs, join(repoRoot, 'test/tftp/get.ts'), JSON.stringify(options)], {
        cwd: repoRoot,
        timeoutMs: 30_000,
      });
      expect(result.code, result.stdout + result.stderr).toBe(0);
      const parsed = JSON.parse(result.stdout) as { sha256: string; oack: Record<string, string>; serverPort: number };
      expect(parsed.sha256).toBe(sha);
      expect(parsed.oack).toEqual({ tsize: String(data.length), blksize: '1468' });
      expect(parsed.serverPort).not.toBe(69);
    }, 40_000);

    it.each([
      ['tftp-hpa', (dest: string) => ['tftp', ['-m', 'binary', SERVER, '-c', 'get', '9ffefdef/start4.elf', dest]]],
      ['busybox', (dest: string) => ['busybox', ['tftp', '-b', '1468', '-g', '-r', '9ffefdef/start4.elf', '-l', dest, SERVER]]],
      ['curl', (dest: string) => ['curl', ['-sS', '--tftp-blksize', '1468', '-o', dest, `tftp://${SERVER}/9ffefdef/start4.elf`]]],
    ] as const)('%s downloads byte-exact from port 69', async (name, command) => {
      const dest = join(work, `${name}.bin`);
      const [cmd, args] = command(dest) as [string, readonly string[]];
      const result = await lab.run('cli', cmd, [...args], { timeoutMs: 20_000 });
      expect(result.code, result.stderr).toBe(0);
      expect(createHash('sha256').update(readFileSync(dest)).digest('hex')).toBe(sha);
    });

    it('curl gets ERROR 1 for a serial that is not registered', async () => {
      const result = await lab.run('cli', 'curl', ['-sS', '-v', '-o', join(work, 'x'), `tftp://${SERVER}/12345678/start4.elf`], {
        timeoutMs: 20_000,
      });
      expect(result.code).toBe(68);
      expect(result.stderr).toMatch(/not found/i);
    });

    it(`served the downloads on ${threads > 0 ? 'the transfer thread' : 'the main thread'} (stats printed on SIGTERM)`, async () => {
      await stopProcess(server);
      const line = /^stats (.*)$/m.exec(output);
      expect(line, output).not.toBeNull();
      const stats = JSON.parse(line![1]!) as { threads: number; threaded: number; completed: number };
      expect(stats).toMatchObject({ threads, completed: 4 });
      // Four downloads one after another, each from a new process: the worker's end report is back
      // long before the next request, so each finds the thread idle and the main lane parked.
      if (threads > 0) expect(stats.threaded).toBeGreaterThanOrEqual(3);
      else expect(stats.threaded).toBe(0);
    });
  },
);
