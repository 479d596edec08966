import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileRunner, type CommandRunner } from '@iot-tofu/nfs-server-lite';

/** A temp folder under /tmp for one test. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `iot-tofu-${prefix}-`));
}

/**
 * A tiny Raspberry Pi OS look-alike: a boot folder (firmware names, config.txt, cmdline.txt) and a
 * root with odd owners, a setuid binary, symlinks (relative and absolute), a hardlink pair, a
 * character device node and an xattr (security.capability-like user xattr).
 */
export function makeBaseTrees(dir: string, options: { bookworm?: boolean } = {}): { boot: string; root: string } {
  const boot = join(dir, 'boot');
  const root = join(dir, 'root');
  mkdirSync(boot, { recursive: true });
  for (const f of ['bootcode.bin', 'start.elf', 'start4.elf', 'fixup.dat', 'fixup4.dat', 'kernel8.img', 'bcm2711-rpi-4-b.dtb', 'bcm2710-rpi-3-b.dtb']) writeFileSync(join(boot, f), `${f} contents\n`);
  mkdirSync(join(boot, 'overlays'));
  writeFileSync(join(boot, 'overlays', 'overlay_map.dtb'), 'map');
  writeFileSync(join(boot, 'config.txt'), '[all]\narm_64bit=1\n');
  writeFileSync(join(boot, 'cmdline.txt'), 'console=serial0,115200 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n');
  for (const d of ['etc/init.d', 'etc/ssh', 'etc/systemd/system/multi-user.target.wants', 'usr/bin', 'home/pi', 'dev', 'var/empty']) mkdirSync(join(root, d), { recursive: true });
  if (options.bookworm) {
    mkdirSync(join(root, 'boot/firmware'), { recursive: true });
    mkdirSync(join(root, 'etc/NetworkManager/conf.d'), { recursive: true });
  } else mkdirSync(join(root, 'boot'));
  writeFileSync(join(root, 'etc/hostname'), 'raspberrypi\n');
  writeFileSync(join(root, 'etc/fstab'), 'PARTUUID=1234-01 /boot vfat defaults 0 2\n');
  writeFileSync(join(root, 'etc/init.d/dphys-swapfile'), '#!/bin/sh\n');
  writeFileSync(join(root, 'etc/init.d/keepme'), '#!/bin/sh\n');
  writeFileSync(join(root, 'etc/ssh/ssh_host_ed25519_key'), 'SECRET\n');
  writeFileSync(join(root, 'etc/ssh/ssh_host_ed25519_key.pub'), 'PUB\n');
  writeFileSync(join(root, 'etc/ssh/sshd_config'), 'Port 22\n');
  symlinkSync('/lib/systemd/system/dphys-swapfile.service', join(root, 'etc/systemd/system/multi-user.target.wants/dphys-swapfile.service'));
  writeFileSync(join(root, 'usr/bin/sudo'), 'ELF sudo');
  chmodSync(join(root, 'usr/bin/sudo'), 0o4755);
  writeFileSync(join(root, 'usr/bin/ping'), 'ELF ping');
  execFileSync('setfattr', ['-n', 'user.tofu', '-v', 'cap_net_raw', join(root, 'usr/bin/ping')]);
  writeFileSync(join(root, 'usr/bin/perl'), 'ELF perl');
  linkSync(join(root, 'usr/bin/perl'), join(root, 'usr/bin/perl5.36'));
  symlinkSync('perl', join(root, 'usr/bin/perl-link'));
  symlinkSync('/etc/hostname', join(root, 'etc/absolute-link'));
  writeFileSync(join(root, 'home/pi/.bashrc'), 'alias ll="ls -l"\n');
  chownSync(join(root, 'home/pi'), 1000, 1000);
  chownSync(join(root, 'home/pi/.bashrc'), 1000, 1000);
  chownSync(join(root, 'var/empty'), 4242, 4343);
  chmodSync(join(root, 'var/empty'), 0o1777);
  execFileSync('mknod', ['-m', '666', join(root, 'dev/null'), 'c', '1', '3']);
  return { boot, root };
}

export interface RecordedCall {
  file: string;
  args: readonly string[];
}

/** The real runner, recording calls; `fail` makes chosen commands fail like a real non-zero exit. */
export function recordingRunner(options: { fail?: (file: string, args: readonly string[]) => boolean; fakeExportfs?: boolean } = {}): { runner: CommandRunner; calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const runner: CommandRunner = async (file, args, runOptions) => {
    calls.push({ file, args });
    if (options.fail?.(file, args)) throw new Error(`${file} ${args.join(' ')} failed (injected)`);
    if (options.fakeExportfs && file === 'exportfs') return { stdout: '', stderr: '' };
    return execFileRunner(file, args, runOptions);
  };
  return { runner, calls };
}
