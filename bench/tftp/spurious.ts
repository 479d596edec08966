/**
 * Spurious retransmissions of the adaptive timeout on a clean link under CPU load: N concurrent
 * lock-step busybox downloads from our server on loopback, adaptive vs fixed timeout, in one run.
 * Nothing is lost on loopback, so every retransmission counted by the server is spurious.
 *   node --conditions=@iot-tofu/source --import tsx bench/tftp/spurious.ts [--n 50] [--mb 10] [--rounds 2]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { FileSource, TftpServer } from '@iot-tofu/tftp';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '50' }, mb: { type: 'string', default: '10' }, rounds: { type: 'string', default: '2' } },
});
const n = Math.min(200, Number(values.n));
const mb = Math.min(50, Number(values.mb));
const rounds = Math.min(5, Number(values.rounds));
const root = mkdtempSync(join(tmpdir(), 'tftp-spurious-'));
writeFileSync(join(root, 'kernel.img'), randomBytes(mb * 1024 * 1024));

function download(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      'busybox',
      ['tftp', '-g', '-b', '1468', '-r', 'kernel.img', '-l', '/dev/null', '127.0.0.1', String(port)],
      { timeout: 120_000 },
      (error) => resolve(!error),
    );
  });
}

async function run(adaptiveTimeout: boolean) {
  const server = new TftpServer({
    address: '127.0.0.1',
    port: 0,
    source: new FileSource({ root }),
    adaptiveTimeout,
    perClientMax: n,
    maxConcurrent: n,
  });
  const { port } = await server.start();
  const started = performance.now();
  const ok = (await Promise.all(Array.from({ length: n }, () => download(port)))).filter(Boolean).length;
  const seconds = (performance.now() - started) / 1000;
  const { retransmits, completed } = server.stats;
  await server.close();
  const blocks = Math.ceil((mb * 1024 * 1024) / 1468) * n;
  return { adaptiveTimeout, ok, completed, retransmits, perMille: (retransmits / blocks) * 1000, seconds };
}

try {
  for (let round = 0; round < rounds; round++) {
    for (const adaptive of [true, false]) {
      const r = await run(adaptive);
      process.stdout.write(
        `${adaptive ? 'adaptive' : 'fixed 1s'}: ${r.ok}/${n} ok, ${r.retransmits} retransmits (${r.perMille.toFixed(3)} per 1000 blocks), ${r.seconds.toFixed(1)} s\n`,
      );
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
