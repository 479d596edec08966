import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { bootSequence, MODEL_INFO, requiredBootFiles } from '@iot-tofu/rpi';
import type { PiModel } from '@iot-tofu/rpi';
import { FileSource, TftpServer } from '@iot-tofu/tftp';
import type { TftpServerEvents } from '@iot-tofu/tftp';
import { tftpGet } from '../../packages/tftp/test/client.js';
import { parkOnMainLane } from './main-lane.js';
import type { ParkedTransfer } from './main-lane.js';

/**
 * Replays each model's bootloader request pattern (docs/pi-netboot-protocol.md 3.2/3.3) against the server: a
 * tsize probe ended by "Early terminate", the re-request, parallel RRQs for the same file from
 * new ports, many not-found probes — with the boot files coming from the shared `base` folder of
 * a registered serial and one file from the Pi's own folder. Runs on the main thread (threads 0)
 * and on a transfer thread (threads 1, the main lane kept busy by a parked transfer).
 */
const HOST = '127.0.0.1';
const SERIAL = '9ffefdef';

describe.each([{ threads: 0 }, { threads: 1 }])('Raspberry Pi bootloader request patterns (loopback, threads: $threads)', ({ threads }) => {
  let dir: string;
  let server: TftpServer;
  let port: number;
  let parked: ParkedTransfer | undefined;
  const base: Record<string, Buffer> = {};
  const own = Buffer.from('console=serial0,115200 root=/dev/nfs nfsroot=10.0.0.1:/nfs/9ffefdef,vers=3 rw ip=dhcp rootwait\n');
  const events = {
    served: [] as TftpServerEvents['file-served'][0][],
    aborted: [] as TftpServerEvents['transfer-aborted'][0][],
    failed: [] as TftpServerEvents['transfer-failed'][0][],
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tofu-pi-'));
    const root = join(dir, 'tftpboot');
    const models: PiModel[] = ['pi3b', 'pi3b+', 'pi4', 'pi5'];
    for (const file of new Set(models.flatMap((model) => requiredBootFiles(model)))) {
      base[file] = randomBytes(file.startsWith('kernel') ? 3_000_000 : file.endsWith('.elf') ? 700_000 : 20_000);
      mkdirSync(dirname(join(root, 'base', file)), { recursive: true });
      writeFileSync(join(root, 'base', file), base[file]!);
    }
    // The Pi 3 ROM fetches bootcode.bin from the root, without prefix.
    writeFileSync(join(root, 'bootcode.bin'), base['bootcode.bin']!);
    mkdirSync(join(root, SERIAL));
    writeFileSync(join(root, SERIAL, 'cmdline.txt'), own);
    server = new TftpServer({ address: HOST, port: 0, source: new FileSource({ root, isRegistered: (s) => s === SERIAL }), threads });
    server.on('file-served', (e) => events.served.push(e));
    server.on('transfer-aborted', (e) => events.aborted.push(e));
    server.on('transfer-failed', (e) => events.failed.push(e));
    ({ port } = await server.start());
    if (threads > 0) parked = await parkOnMainLane(HOST, port, `${SERIAL}/cmdline.txt`);
  });
  afterAll(async () => {
    await parked?.release();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(['pi3b', 'pi3b+', 'pi4', 'pi5'] as PiModel[])('%s boot sequence completes', async (model) => {
    const info = MODEL_INFO[model];
    const before = {
      served: events.served.length,
      aborted: events.aborted.length,
      failed: events.failed.length,
      threaded: server.stats.threaded,
    };
    let probes = 0;
    let kernelPairs = 0;
    let missing = 0;
    let fetched = 0;
    for (const request of bootSequence(model)) {
      const file = request.prefixed ? `${SERIAL}/${request.file}` : request.file;
      // The Pi 3 ROM asks without options and 512-byte blocks; everything later asks tsize + blksize.
      const options: Record<string, string> =
        info.stage1 === 'rom' && !request.prefixed ? {} : { tsize: '0', blksize: String(info.blksize === 512 ? 512 : 1468) };
      if (request.probe) {
        probes++;
        const probe = await tftpGet({ host: HOST, port, file, options, abortAfterOack: true });
        expect(probe.oack?.tsize, file).toBe(String(base[request.file]!.length));
        continue;
      }
      if (request.kernel) {
        // The firmware opens the kernel twice in parallel from new ports before settling on one.
        const [a, b] = await Promise.all([1, 2].map(() => tftpGet({ host: HOST, port, file, options, keep: true })));
        expect(a!.data!.equals(base[request.file]!)).toBe(true);
        expect(b!.data!.equals(base[request.file]!)).toBe(true);
        fetched += 2;
        kernelPairs++;
        continue;
      }
      const result = await tftpGet({ host: HOST, port, file, options, keep: true, retries: 0, timeoutMs: 2000 });
      if (request.optional) {
        expect(result.error, file).toEqual({ code: 1, message: 'File not found' });
        missing++;
        continue;
      }
      expect(result.ok, file).toBe(true);
      const expected = request.file === 'cmdline.txt' ? own : base[request.file]!;
      expect(result.data!.equals(expected), file).toBe(true);
      fetched++;
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(events.served.length - before.served).toBe(fetched);
    expect(events.aborted.length - before.aborted).toBe(probes);
    const failures = events.failed.slice(before.failed);
    expect(failures).toHaveLength(missing);
    expect(failures.every((f) => f.reason === 'not-found')).toBe(true);
    for (const event of events.served.slice(before.served)) if (event.file.startsWith(`${SERIAL}/`)) expect(event.serial).toBe(SERIAL);
    // With the main lane busy, cached files go to the thread; not all of them: a transfer counts
    // on its thread until the worker's report of its end arrives, which can come after the next
    // request (then thread and main tie, and ties go to main), and so does a kernel pair's second.
    const threaded = server.stats.threaded - before.threaded;
    if (threads > 0) expect(threaded).toBeGreaterThanOrEqual(Math.ceil((probes + fetched - kernelPairs) / 2));
    else expect(threaded).toBe(0);
  });

  it('serves a burst of ten Pis probing and downloading start4.elf at once', async () => {
    // Ten clients all at once, each probing then downloading: the whole burst of a rack powering up.
    const runs = Array.from({ length: 10 }, async () => {
      await tftpGet({ host: HOST, port, file: `${SERIAL}/start4.elf`, options: { tsize: '0', blksize: '1468' }, abortAfterOack: true });
      return tftpGet({ host: HOST, port, file: `${SERIAL}/start4.elf`, options: { tsize: '0', blksize: '1468' }, keep: true });
    });
    for (const result of await Promise.all(runs)) expect(result.data!.equals(base['start4.elf']!)).toBe(true);
    expect(server.stats.failed).toBe(events.failed.length);
  });
});
