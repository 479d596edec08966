import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs, stopProcess } from '@iot-tofu/test-kit';
import { systemClock } from '../src/clock.js';
import type { FetchRequest } from '../src/pi.js';
import { fetchFile } from '../src/tftp-client.js';

// tftpd-hpa on loopback is the real peer: the simulated Pi's TFTP client must read files from it.
// root: in.tftpd drops to user tftp before it serves; as anyone else it exits at once.
describe('simulated Pi TFTP client against tftpd-hpa on loopback', needs('root', 'in.tftpd'), () => {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  let root: string;
  let server: ChildProcess;
  const base: Omit<FetchRequest, 'path' | 'signal'> = {
    server: '127.0.0.1',
    localAddress: '127.0.0.1',
    tsize: true,
    blksize: 1468,
    probe: false,
    timeoutMs: 10_000,
    rrqResendMs: 2000,
    ackResendMs: 1000,
  };
  const fetch = (path: string, extra: Partial<FetchRequest> = {}) =>
    fetchFile(systemClock, { ...base, path, signal: new AbortController().signal, ...extra }, port);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'rpi-sim-tftp-'));
    chmodSync(root, 0o755); // in.tftpd drops to user tftp before reading
    writeFileSync(join(root, 'kernel8.img'), randomBytes(3 * 1468 * 100 + 77));
    writeFileSync(join(root, 'exact.bin'), randomBytes(1468 * 4));
    server = spawn('in.tftpd', ['--foreground', '--listen', '--address', `127.0.0.1:${port}`, '--secure', root], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 300));
  });
  afterAll(async () => {
    if (server) await stopProcess(server);
    rmSync(root, { recursive: true, force: true });
  });

  it('reads a whole file with blksize 1468 and tsize', async () => {
    const outcome = await fetch('kernel8.img');
    expect(outcome).toMatchObject({ result: 'ok', bytes: 3 * 1468 * 100 + 77 });
  });

  it('reads a file that is an exact multiple of the block size (final empty DATA)', async () => {
    expect(await fetch('exact.bin')).toMatchObject({ result: 'ok', bytes: 1468 * 4 });
  });

  it('reads with 512-byte blocks and no options at all (Pi 3 ROM)', async () => {
    expect(await fetch('kernel8.img', { tsize: false, blksize: 0 })).toMatchObject({ result: 'ok', bytes: 3 * 1468 * 100 + 77 });
  });

  it('ends a probe after the OACK without receiving data', async () => {
    expect(await fetch('kernel8.img', { probe: true })).toMatchObject({ result: 'probe', bytes: 0 });
  });

  it('reports a missing file as not-found', async () => {
    expect(await fetch('nope/start4.elf')).toMatchObject({ result: 'not-found' });
  });

  it('gives up when the file limit passes mid-transfer, keeping the partial byte count', async () => {
    const outcome = await fetch('kernel8.img', { timeoutMs: 3 });
    expect(outcome.result).toBe('timeout');
    expect(outcome.bytes).toBeLessThan(3 * 1468 * 100 + 77);
  });

  it('resends the RRQ from the same port while nobody answers, then times out', async () => {
    const outcome = await fetchFile(
      systemClock,
      { ...base, path: 'x', rrqResendMs: 100, timeoutMs: 450, signal: new AbortController().signal },
      port + 1,
    );
    expect(outcome.result).toBe('timeout');
    expect(outcome.retransmits).toBe(4);
  });
});
