/**
 * The read cache alone under a boot storm's opens (no network): N Pi folders holding the Pi 4
 * boot files of `--initramfs` (~24 MB), as hard links to one copy (`shared`) or as one copy per Pi
 * (`copies`); every Pi opens all its files at once, holds them like running transfers, then
 * releases them. Prints, per layout and round, the time until every file is open, the cache
 * counters and the growth of external memory, and copies ÷ shared of the same round.
 *
 *   node --expose-gc --conditions=@iot-tofu/source --import tsx bench/storm/cache-copies.ts [--n 60] [--rounds 3] [--cache-mib 256]
 *
 * Writes N × 24 MB under /var/tmp/iot-tofu-storm/cache-copies-<pid> and removes it at the end.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { simulatedIdentities } from '@iot-tofu/rpi-sim';
import { FileSource } from '@iot-tofu/tftp';
import type { FileSourceStats, OpenedFile } from '@iot-tofu/tftp';
import { INITRAMFS_FILE_SIZES, buildBootTree, type TreeLayout } from './tree.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '60' },
    rounds: { type: 'string', default: '3' },
    'cache-mib': { type: 'string', default: '256' },
  },
});
const n = Number(values.n);
const rounds = Number(values.rounds);
const cacheMaxBytes = Number(values['cache-mib']) * 1024 * 1024;
if (!(n >= 1 && n <= 200 && rounds >= 1 && rounds <= 10)) throw new Error('--n 1..200, --rounds 1..10');
if (!globalThis.gc) process.stderr.write('cache-copies: run with node --expose-gc, else memory figures include earlier rounds\n');

const PI4_FILES = ['start4.elf', 'fixup4.dat', 'config.txt', 'bcm2711-rpi-4-b.dtb', 'cmdline.txt', 'kernel8.img', 'initramfs8'];
const cacheDir = '/var/tmp/iot-tofu-storm';
const pis = simulatedIdentities(n, 'pi4');

interface Sample {
  readonly ms: number;
  readonly externalMiB: number;
  readonly stats: FileSourceStats;
}

/** Collects the previous round's buffers (SharedArrayBuffer stores are freed after a GC, not at once). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function storm(root: string): Promise<Sample> {
  await settle();
  const source = new FileSource({ root, sharedFolder: null, cacheMaxBytes });
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  const opened: OpenedFile[] = await Promise.all(
    pis.flatMap((pi) => PI4_FILES.map((file) => source.open(`${pi.serial}/${file}`, { blksize: 1468 }))),
  );
  const ms = performance.now() - t0;
  const externalMiB = (process.memoryUsage().arrayBuffers - before) / 2 ** 20;
  for (const o of opened) o.body.release();
  return { ms, externalMiB, stats: source.stats };
}

const layouts: TreeLayout[] = ['shared', 'copies'];
const roots = Object.fromEntries(layouts.map((l) => [l, join(cacheDir, `cache-copies-${process.pid}`, l)])) as Record<TreeLayout, string>;
try {
  for (const layout of layouts) buildBootTree({ root: roots[layout], cacheDir, pis, sizes: INITRAMFS_FILE_SIZES, layout });
  process.stdout.write(`cache-copies: N=${n}, ${PI4_FILES.length} files per Pi, cache ${values['cache-mib']} MiB, ${rounds} rounds\n`);
  for (let round = 1; round <= rounds; round++) {
    const samples = {} as Record<TreeLayout, Sample>;
    for (const layout of round % 2 === 1 ? layouts : [...layouts].reverse()) {
      samples[layout] = await storm(roots[layout]);
      const s = samples[layout];
      process.stdout.write(
        `  round ${round} ${layout}: all open in ${s.ms.toFixed(0)} ms, external +${s.externalMiB.toFixed(0)} MiB, ` +
          `cache ${(s.stats.cachedBytes / 2 ** 20).toFixed(1)} MiB in ${s.stats.cachedBuffers} buffers for ${s.stats.cachedFiles} files, ` +
          `misses ${s.stats.misses} (shared ${s.stats.shared}), hits ${s.stats.hits}, streamed ${s.stats.streamed}\n`,
      );
    }
    const ratio = (f: (s: Sample) => number) => (f(samples.shared) > 0 ? (f(samples.copies) / f(samples.shared)).toFixed(2) : '–');
    process.stdout.write(
      `  round ${round} copies ÷ shared: time ×${ratio((s) => s.ms)}, external memory ×${ratio((s) => s.externalMiB)}, streamed ${samples.copies.stats.streamed} vs ${samples.shared.stats.streamed}\n`,
    );
  }
} finally {
  rmSync(join(cacheDir, `cache-copies-${process.pid}`), { recursive: true, force: true });
}
