import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileRunner, type CommandRunner } from '@iot-tofu/host-io';
import { needs } from '@iot-tofu/test-kit';

/**
 * Whether this machine can build the full base fixture (foreign owners, a device node, xattrs
 * including security.capability): root and an xattr-capable temp dir. Tests that assert those
 * survive declare `needs(...SPECIAL_ENTRIES)`; the rest run on any machine with a plain fixture.
 */
export const SPECIAL_ENTRIES = ['root', 'xattr'] as const;
const canMakeSpecialEntries = (): boolean => needs.met(...SPECIAL_ENTRIES);

/**
 * What the mutating verbs (setup, add, remove) need beyond anyUser: nothing since they give files
 * their owner only when running as root (ownBy); kept as the one place to say so if that changes.
 * Importing an image still needs root (its owners are kept with lchown).
 */
export const VERB_NEEDS = [] as const;

/**
 * Fleet options for tests of our own logic on any machine: the verbs refuse to run without root
 * (that refusal has its own test), so they are told they have it; the fixture then holds nothing a
 * non-root copy could not keep.
 */
export const anyUser = { isRoot: () => true } as const;

/**
 * A fleet's folders under one temp dir, with a private exports file on the lab's 10.77.0.0/24 and
 * the server at 10.77.0.2: what the verb tests open their Fleet on (plus a runner and anyUser).
 */
export function tempRoots(dir: string): {
  tftpRoot: string;
  nfsRoot: string;
  stateDir: string;
  exportsFile: string;
  exportsClients: string;
  serverIp: string;
} {
  return {
    tftpRoot: join(dir, 'tftpboot'),
    nfsRoot: join(dir, 'nfs'),
    stateDir: join(dir, 'state'),
    exportsFile: join(dir, 'exports.d', 'test.exports'),
    exportsClients: '10.77.0.0/24',
    serverIp: '10.77.0.2',
  };
}

/** A temp folder under /tmp for one test. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `iot-tofu-${prefix}-`));
}

/** The firmware, kernel and DTBs of a Pi 3/4 base's boot partition, as the fleet tests build one. */
export const BASE_BOOT_FILES = [
  'bootcode.bin',
  'start.elf',
  'start4.elf',
  'fixup.dat',
  'fixup4.dat',
  'kernel8.img',
  'bcm2711-rpi-4-b.dtb',
  'bcm2710-rpi-3-b.dtb',
] as const;

/**
 * A tiny Raspberry Pi OS look-alike: a boot folder (firmware names, config.txt, cmdline.txt) and a
 * root with a setuid binary, symlinks (relative and absolute), a hardlink pair and, where the
 * machine allows (`special`, default: root and xattrs available), odd owners, a character device
 * node and xattrs (a user one and security.capability).
 */
export function makeBaseTrees(dir: string, options: { bookworm?: boolean; special?: boolean } = {}): { boot: string; root: string } {
  const special = options.special ?? canMakeSpecialEntries();
  const boot = join(dir, 'boot');
  const root = join(dir, 'root');
  mkdirSync(boot, { recursive: true });
  for (const f of BASE_BOOT_FILES) writeFileSync(join(boot, f), `${f} contents\n`);
  mkdirSync(join(boot, 'overlays'));
  writeFileSync(join(boot, 'overlays', 'overlay_map.dtb'), 'map');
  writeFileSync(join(boot, 'config.txt'), '[all]\narm_64bit=1\n');
  writeFileSync(join(boot, 'cmdline.txt'), 'console=serial0,115200 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n');
  for (const d of [
    'etc/init.d',
    'etc/ssh',
    'etc/systemd/system/multi-user.target.wants',
    'usr/bin',
    'usr/lib/systemd/system',
    'home/pi',
    'dev',
    'var/empty',
  ])
    mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'usr/lib/systemd/system/ssh.service'), '[Unit]\nDescription=OpenBSD Secure Shell server\n');
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
  symlinkSync(
    '/lib/systemd/system/dphys-swapfile.service',
    join(root, 'etc/systemd/system/multi-user.target.wants/dphys-swapfile.service'),
  );
  writeFileSync(join(root, 'usr/bin/sudo'), 'ELF sudo');
  chmodSync(join(root, 'usr/bin/sudo'), 0o4755);
  writeFileSync(join(root, 'usr/bin/ping'), 'ELF ping');
  if (special) {
    execFileSync('setfattr', ['-n', 'user.tofu', '-v', 'cap_net_raw', join(root, 'usr/bin/ping')]);
    // cap_net_raw+ep, as Raspberry Pi OS ships /usr/bin/ping (VFS capability v2 layout).
    execFileSync('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(root, 'usr/bin/ping')]);
  }
  writeFileSync(join(root, 'usr/bin/perl'), 'ELF perl');
  linkSync(join(root, 'usr/bin/perl'), join(root, 'usr/bin/perl5.36'));
  symlinkSync('perl', join(root, 'usr/bin/perl-link'));
  symlinkSync('/etc/hostname', join(root, 'etc/absolute-link'));
  writeFileSync(join(root, 'home/pi/.bashrc'), 'alias ll="ls -l"\n');
  chmodSync(join(root, 'var/empty'), 0o1777);
  if (special) {
    chownSync(join(root, 'home/pi'), 1000, 1000);
    chownSync(join(root, 'home/pi/.bashrc'), 1000, 1000);
    chownSync(join(root, 'var/empty'), 4242, 4343);
    execFileSync('mknod', ['-m', '666', join(root, 'dev/null'), 'c', '1', '3']);
  }
  return { boot, root };
}

export interface RecordedCall {
  file: string;
  args: readonly string[];
}

/** The real runner, recording calls; `fail` makes chosen commands fail like a real non-zero exit. */
export function recordingRunner(options: { fail?: (file: string, args: readonly string[]) => boolean; fakeExportfs?: boolean } = {}): {
  runner: CommandRunner;
  calls: RecordedCall[];
} {
  const calls: RecordedCall[] = [];
  const runner: CommandRunner = async (file, args, runOptions) => {
    calls.push({ file, args });
    if (options.fail?.(file, args)) throw new Error(`${file} ${args.join(' ')} failed (injected)`);
    if (options.fakeExportfs && file === 'exportfs') return { stdout: '', stderr: '' };
    return execFileRunner(file, args, runOptions);
  };
  return { runner, calls };
}

/** What makePiImage runs (as any user); pass to needs(). */
export const IMAGE_TOOLS = ['sfdisk', 'mkfs.vfat', 'mcopy', 'mkfs.ext4', 'e2fsck', 'xattr'] as const;

/** Sector layout of the synthetic image: 1 MiB gap, 8 MiB FAT boot, 16 MiB ext4 root. */
export const IMAGE_LAYOUT = { bootStart: 2048, bootSectors: 16384, rootStart: 18432, rootSectors: 32768 };

/**
 * Builds a small Raspberry Pi OS-like disk image the way the brief says: sfdisk on a plain file,
 * mkfs.vfat + mcopy for the boot partition, mkfs.ext4 -d (as root: owners, xattrs, device nodes,
 * hardlinks kept) for the root, dd'ed in at the partition offsets.
 */
export function makePiImage(
  dir: string,
  options: { bookworm?: boolean; fs?: 'ext4' | 'ext2-1k' } = {},
): { image: string; boot: string; root: string } {
  const trees = makeBaseTrees(join(dir, 'trees'), options);
  // A file big enough for indirect blocks (1k-block ext2) and an xattr too big for the inode.
  writeFileSync(join(trees.root, 'usr/bin/big'), Buffer.alloc(300 * 1024, 7));
  execFileSync('setfattr', ['-n', 'user.long', '-v', `0x${'ab'.repeat(300)}`, join(trees.root, 'usr/bin/big')]);
  symlinkSync(`/${'very-long-target/'.repeat(6)}end`, join(trees.root, 'etc/long-link'));
  // A sparse file with many separate runs: more extents than the inode holds (extent tree depth 1).
  const sparse = openSync(join(trees.root, 'usr/bin/sparse'), 'w');
  for (let i = 0; i < 12; i++) writeSync(sparse, Buffer.alloc(4096, i + 1), 0, 4096, i * 65536);
  closeSync(sparse);
  // A directory big enough to get an htree index (after e2fsck -D below).
  mkdirSync(join(trees.root, 'usr/share/many'), { recursive: true });
  for (let i = 0; i < 400; i++) writeFileSync(join(trees.root, 'usr/share/many', `entry-with-a-longish-name-${i}`), `${i}`);
  const image = join(dir, 'raspios.img');
  const { bootStart, bootSectors, rootStart, rootSectors } = IMAGE_LAYOUT;
  execFileSync('truncate', ['-s', String((rootStart + rootSectors) * 512), image]);
  execFileSync('sfdisk', ['--quiet', image], {
    input: `label: dos\nstart=${bootStart}, size=${bootSectors}, type=c\nstart=${rootStart}, size=${rootSectors}, type=83\n`,
  });
  const fat = join(dir, 'boot.fat');
  execFileSync('truncate', ['-s', String(bootSectors * 512), fat]);
  execFileSync('mkfs.vfat', ['-n', 'bootfs', fat], { stdio: 'ignore' });
  execFileSync('mcopy', ['-s', '-i', fat, ...readdirSync(trees.boot).map((n) => join(trees.boot, n)), '::/']);
  const ext = join(dir, 'root.ext4');
  const mkfsArgs = options.fs === 'ext2-1k' ? ['-t', 'ext2', '-b', '1024'] : ['-t', 'ext4'];
  execFileSync('mkfs.ext4', ['-q', '-F', ...mkfsArgs, '-L', 'rootfs', '-d', trees.root, ext, `${(rootSectors * 512) / 1024}k`], {
    stdio: 'ignore',
  });
  try {
    // -D re-indexes directories: large ones become htrees, like on a real, used root filesystem.
    execFileSync('e2fsck', ['-f', '-y', '-D', ext], { stdio: 'ignore' });
  } catch (error) {
    if ((error as { status?: number }).status !== 1) throw error; // 1 = "errors corrected" (the re-index)
  }
  execFileSync('dd', [`if=${fat}`, `of=${image}`, 'bs=512', `seek=${bootStart}`, 'conv=notrunc', 'status=none']);
  execFileSync('dd', [`if=${ext}`, `of=${image}`, 'bs=512', `seek=${rootStart}`, 'conv=notrunc', 'status=none']);
  return { image, ...trees };
}

/**
 * A comparable description of a tree: type, mode, owner, size, link target, device number,
 * hardlink groups, content hash and xattrs of every entry (lost+found left out).
 */
export function treeManifest(root: string, options: { mtimes?: boolean } = {}): string[] {
  const lines: string[] = [];
  const inodes = new Map<string, string>();
  const walk = (rel: string) => {
    const path = rel ? join(root, rel) : root;
    const info = lstatSync(path);
    let extra = '';
    if (info.isSymbolicLink()) extra = `-> ${readlinkSync(path)}`;
    else if (info.isFile()) {
      extra = createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
      if (info.nlink > 1) {
        const key = `${info.ino}`;
        const first = inodes.get(key);
        if (first) extra += ` hardlink=${first}`;
        else inodes.set(key, rel);
      }
    } else if (info.isCharacterDevice() || info.isBlockDevice()) extra = `rdev=${info.rdev}`;
    const size = info.isFile() ? info.size : 0;
    const mtime = options.mtimes && rel !== '' ? ` t=${Math.floor(info.mtimeMs / 1000)}` : '';
    lines.push(
      `${rel || '.'} ${(info.mode & 0o170000).toString(8)} ${(info.mode & 0o7777).toString(8)} ${info.uid}:${info.gid} ${size}${mtime} ${extra}`,
    );
    if (info.isDirectory())
      for (const name of readdirSync(path).sort()) if (!(rel === '' && name === 'lost+found')) walk(rel ? `${rel}/${name}` : name);
  };
  walk('');
  // xattrs where the machine has them (tests about xattrs declare needs(...SPECIAL_ENTRIES)).
  if (!needs.met('xattr')) return lines;
  const xattrs = execFileSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'utf8' })
    .replaceAll(`# file: ${root}`, '# file: .')
    .split('\n')
    .filter((l) => l && !l.includes('lost+found'));
  return [...lines, ...xattrs];
}
