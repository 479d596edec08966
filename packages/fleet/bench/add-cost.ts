/**
 * Closing-note measurement: time and disk cost of `Fleet.add` for one Pi on a big base, against a
 * plain `cp -a` full copy of the same base measured in the same run, on the same filesystem.
 *
 *   node --conditions=@iot-tofu/source --import tsx packages/fleet/bench/add-cost.ts [--gb 2] [--keep]
 *
 * Generates a sparse-free base tree (1 MiB files of non-zero bytes plus many small files, like a
 * root filesystem) in a temp dir, checks free space first, and deletes everything at the end.
 * Exports go to a private file with a no-op exportfs runner: this measures the copy, not NFS.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileRunner, type CommandRunner } from '@iot-tofu/host-io';
import { Fleet } from '../src/index.js';

const args = process.argv.slice(2);
const gb = Number(args[args.indexOf('--gb') + 1] ?? 2) || 2;
const totalBytes = gb * 1024 ** 3;
const work = '/work';

/** Allocated bytes of a tree (du counts shared reflinked blocks in full: only exact without reflink). */
const du = (path: string) => Number(execFileSync('du', ['-s', '--block-size=1', path], { encoding: 'utf8' }).split('\t')[0]);
const used = (path: string) => {
  const s = statfsSync(path);
  return (s.blocks - s.bfree) * s.bsize;
};
const free = (path: string) => {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
};

/** Deletes on this VM's disk are discarded at journal commit; let that finish before timing. */
async function settle(): Promise<void> {
  execFileSync('sync');
  await new Promise((resolve) => setTimeout(resolve, 5000));
  execFileSync('sync');
}

const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-add-cost-'));
if (statSync(dir).dev !== statSync(work).dev) throw new Error(`${dir} is not on the filesystem of ${work}; set TMPDIR`);
// base + full copy + Pi copy, plus slack
if (free(dir) < totalBytes * 3.5)
  throw new Error(`not enough free space: need ${(totalBytes * 3.5) / 1024 ** 3} GiB, have ${free(dir) / 1024 ** 3} GiB`);
const fsType = execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '-T', dir], { encoding: 'utf8' }).trim();

try {
  console.log(
    `filesystem: ${fsType} (${execFileSync('findmnt', ['-n', '-o', 'SOURCE', '-T', dir], { encoding: 'utf8' }).trim()}), base ${gb} GiB`,
  );
  const boot = join(dir, 'src-boot');
  const root = join(dir, 'src-root');
  mkdirSync(boot, { recursive: true });
  // A Pi OS arm64 boot partition's sizes (firmware for every model, two kernels and initramfs, DTBs, overlays): about 70 MB.
  const bootSizes: Record<string, number> = {
    'kernel8.img': 9_400_000,
    'kernel_2712.img': 9_600_000,
    initramfs8: 12_300_000,
    initramfs_2712: 12_400_000,
    'bootcode.bin': 52_000,
    'fixup4.dat': 5_400,
    'bcm2711-rpi-4-b.dtb': 56_000,
    'bcm2712-rpi-5-b.dtb': 80_000,
    'config.txt': 1_200,
  };
  for (const elf of [
    'start.elf',
    'start_cd.elf',
    'start_db.elf',
    'start_x.elf',
    'start4.elf',
    'start4cd.elf',
    'start4db.elf',
    'start4x.elf',
  ])
    bootSizes[elf] = 2_900_000;
  mkdirSync(join(boot, 'overlays'));
  for (let i = 0; i < 300; i++) bootSizes[`overlays/o${i}.dtbo`] = 18_000;
  for (const [f, size] of Object.entries(bootSizes)) writeFileSync(join(boot, f), Buffer.alloc(size, f.length));
  writeFileSync(
    join(boot, 'cmdline.txt'),
    'console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n',
  );
  for (const d of ['etc/init.d', 'etc/ssh', 'etc/systemd/system/multi-user.target.wants', 'boot/firmware', 'usr/lib'])
    mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/hostname'), 'raspberrypi\n');
  // 20 000 small files (~4 KiB) like /usr/share and /usr/lib, the rest in 1 MiB files.
  let written = 0;
  const small = Buffer.alloc(4096, 0x5a);
  for (let i = 0; i < 20_000; i++) {
    const sub = join(root, 'usr/share', `d${Math.floor(i / 500)}`);
    if (i % 500 === 0) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}`), small);
    written += small.length;
  }
  const chunk = Buffer.alloc(1024 * 1024);
  for (let i = 0; written < totalBytes; i++) {
    chunk.fill((i % 250) + 1);
    if (i % 200 === 0) mkdirSync(join(root, 'usr/lib', `d${i / 200}`));
    writeFileSync(join(root, 'usr/lib', `d${Math.floor(i / 200)}`, `lib${i}.so`), chunk);
    written += chunk.length;
  }
  execFileSync('sync');

  const noExportfs: CommandRunner = (file, a, o) =>
    file === 'exportfs' ? Promise.resolve({ stdout: '', stderr: '' }) : execFileRunner(file, a, o);
  const fleet = await Fleet.open({
    tftpRoot: join(dir, 'tftpboot'),
    nfsRoot: join(dir, 'nfs'),
    stateDir: join(dir, 'state'),
    exportsFile: join(dir, 'exports'),
    exportsClients: '10.77.0.0/24',
    serverIp: '10.77.0.2',
    runner: noExportfs,
  });
  const t = performance.now();
  await fleet.setup({ base: 'big', source: { kind: 'dirs', boot, root } });
  const setupMs = performance.now() - t;
  rmSync(root, { recursive: true, force: true });

  // Plain full copy of the imported base (what a Pi costs without copy-on-write) and Fleet.add,
  // alternated twice each with the page cache flushed and deletes settled in between (this VM's
  // disk discards on delete); the better run of each counts.
  const plain: Array<{ ms: number; bytes: number; du: number }> = [];
  const adds: Array<{ ms: number; bytes: number; du: number; bootDu: number; mode: string }> = [];
  await settle();
  for (let round = 0; round < 2; round++) {
    let before = used(dir);
    let t = performance.now();
    execFileSync('cp', ['-a', join(dir, 'nfs/bases/big'), join(dir, 'plain-copy')]);
    execFileSync('sync');
    plain.push({ ms: performance.now() - t, bytes: used(dir) - before, du: du(join(dir, 'plain-copy')) });
    rmSync(join(dir, 'plain-copy'), { recursive: true, force: true });
    await settle();

    const serial = `9f55bb${round.toString(16).padStart(2, '0')}`;
    before = used(dir);
    t = performance.now();
    const result = await fleet.add({ serial, owner: 'bench', name: 'bench', base: 'big' });
    execFileSync('sync');
    adds.push({
      ms: performance.now() - t,
      bytes: used(dir) - before,
      du: du(join(dir, 'nfs', serial)) + du(join(dir, 'tftpboot', serial)),
      bootDu: du(join(dir, 'tftpboot', serial)),
      mode: result.copyMode,
    });
    await fleet.remove(serial);
    await settle();
  }
  await fleet.close();
  const best = <T extends { ms: number }>(runs: T[]): T => runs.reduce((a, b) => (b.ms < a.ms ? b : a));
  const p = best(plain);
  const a = best(adds);
  const mib = (b: number) => (b / 1024 ** 2).toFixed(0);
  console.log(`setup (import ${gb} GiB base from a directory): ${(setupMs / 1000).toFixed(1)} s`);
  const secs = (runs: Array<{ ms: number }>) => runs.map((r) => (r.ms / 1000).toFixed(1)).join(', ');
  console.log(
    `plain cp -a:   ${(p.ms / 1000).toFixed(1)} s (runs ${secs(plain)}), filesystem used +${mib(p.bytes)} MiB, du ${mib(p.du)} MiB`,
  );
  console.log(
    `Fleet.add:     ${(a.ms / 1000).toFixed(1)} s (runs ${secs(adds)}), filesystem used +${mib(a.bytes)} MiB, du ${mib(a.du)} MiB, copy mode ${a.mode}`,
  );
  console.log(`of which the boot folder (/boot/firmware): du ${mib(a.bootDu)} MiB`);
  console.log(
    `ratios add/plain: time ${(a.ms / p.ms).toFixed(2)}, disk (filesystem used) ${(a.bytes / p.bytes).toFixed(3)}, disk (du) ${(a.du / p.du).toFixed(3)}`,
  );
} finally {
  if (!args.includes('--keep')) rmSync(dir, { recursive: true, force: true });
}
