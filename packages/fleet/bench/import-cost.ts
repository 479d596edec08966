/**
 * Speed of our ext4 reader (image → tree with owners, modes, links, devices, xattrs) against
 * e2fsprogs' `debugfs -R "rdump / dest"` on the same image in the same run (debugfs keeps less:
 * no hardlinks, no device nodes, no xattrs, so it does strictly less work).
 *
 *   node --conditions=@iot-tofu/source --import tsx packages/fleet/bench/import-cost.ts [--mb 512] [--files 20000] [--out /dev/shm]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileRunner } from '@iot-tofu/host-io';
import { extractExt4 } from '../src/ext4-extract.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => Number(args[args.indexOf(name) + 1] ?? fallback) || fallback;
const mb = opt('--mb', 512);
const files = opt('--files', 20_000);
// --out /dev/shm writes the trees to tmpfs: measures the readers, not this VM's noisy disk.
const outIndex = args.indexOf('--out');
const outBase = outIndex >= 0 ? args[outIndex + 1] : undefined;
/** Deletes on this VM's disk are discarded at journal commit; let that finish before timing. */
async function settle(): Promise<void> {
  execFileSync('sync');
  await new Promise((resolve) => setTimeout(resolve, 5000));
  execFileSync('sync');
}

const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-import-cost-'));
const out = outBase ? mkdtempSync(join(outBase, 'iot-tofu-import-out-')) : dir;
try {
  const tree = join(dir, 'tree');
  const small = Buffer.alloc(4096, 0x61);
  for (let i = 0; i < files; i++) {
    const sub = join(tree, 'usr/share', `d${Math.floor(i / 400)}`);
    if (i % 400 === 0) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}`), small);
  }
  mkdirSync(join(tree, 'usr/lib'), { recursive: true });
  for (let i = 0; i < mb; i++) writeFileSync(join(tree, 'usr/lib', `lib${i}.so`), Buffer.alloc(1024 * 1024, (i % 250) + 1));
  const image = join(dir, 'root.ext4');
  const sizeMb = Math.ceil(mb * 1.3 + (files * 8) / 1024 + 64);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, image, `${sizeMb}M`], { stdio: 'ignore' });
  rmSync(tree, { recursive: true, force: true });
  await settle();

  // Alternate the two, twice each, and keep the better run of each (page cache and writeback
  // make single runs noisy); every run ends with sync so written data is counted.
  const ours: number[] = [];
  const debugfs: number[] = [];
  let stats: Awaited<ReturnType<typeof extractExt4>> | undefined;
  for (let round = 0; round < 2; round++) {
    let t = performance.now();
    stats = await extractExt4(image, 0, join(out, `ours${round}`), { runner: execFileRunner });
    execFileSync('sync');
    ours.push(performance.now() - t);
    rmSync(join(out, `ours${round}`), { recursive: true, force: true });
    await settle();
    mkdirSync(join(out, `debugfs${round}`));
    t = performance.now();
    execFileSync('debugfs', ['-R', `rdump / ${join(out, `debugfs${round}`)}`, image], { stdio: 'ignore' });
    execFileSync('sync');
    debugfs.push(performance.now() - t);
    rmSync(join(out, `debugfs${round}`), { recursive: true, force: true });
    await settle();
  }
  const oursMs = Math.min(...ours);
  const debugfsMs = Math.min(...debugfs);
  console.log(
    `image: ${sizeMb} MiB ext4, ${files} small files + ${mb} x 1 MiB; extracted ${stats?.files} files, ${((stats?.bytes ?? 0) / 1024 ** 2).toFixed(0)} MiB`,
  );
  console.log(`our ext4 reader:   ${(oursMs / 1000).toFixed(2)} s (runs: ${ours.map((m) => (m / 1000).toFixed(2)).join(', ')})`);
  console.log(`debugfs rdump:     ${(debugfsMs / 1000).toFixed(2)} s (runs: ${debugfs.map((m) => (m / 1000).toFixed(2)).join(', ')})`);
  console.log(`ratio ours/debugfs: ${(oursMs / debugfsMs).toFixed(2)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
  if (out !== dir) rmSync(out, { recursive: true, force: true });
}
