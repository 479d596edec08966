import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { allRequiredBootFiles } from '@iot-tofu/rpi';

/**
 * What a Linux netboot test needs besides our server: Debian's x86-64 kernel posing as a Pi's
 * kernel8.img, an initramfs made by Debian's initramfs-tools posing as initramfs8, a Pi OS-like
 * boot folder and a tiny busybox root whose /sbin/init prints a marker (docs/pi-netboot-protocol.md section 9).
 */

export interface InstalledKernel {
  version: string;
  vmlinuz: string;
}

/** The newest /boot/vmlinuz-<ver> that has its /lib/modules/<ver> (package linux-image-amd64). */
export function installedKernel(): InstalledKernel | undefined {
  const versions = readdirSafe('/boot')
    .filter((name) => name.startsWith('vmlinuz-'))
    .map((name) => name.slice('vmlinuz-'.length))
    .filter((version) => existsSync(join('/lib/modules', version, 'modules.dep')))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const version = versions.at(-1);
  return version ? { version, vmlinuz: join('/boot', `vmlinuz-${version}`) } : undefined;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * initramfs-tools config for an NFS root: only the NIC driver and the NFS client (MODULES=list
 * takes their dependencies too). MODULES=netboot would add every network driver: 27 MB instead
 * of 7 MB, 65 s instead of 5 s to build, and a slower TFTP download.
 */
export const INITRAMFS_CONF = [
  'MODULES=list',
  'BUSYBOX=y',
  'KEYMAP=n',
  'COMPRESS=gzip',
  'DEVICE=',
  'NFSROOT=auto',
  'RUNSIZE=10%',
  'FSTYPE=auto',
  '',
].join('\n');
export const INITRAMFS_MODULES = ['e1000', 'nfs', 'nfsv3', ''].join('\n');

/** Cache key: kernel version, the kernel file and our config, so a kernel update rebuilds. */
export function initramfsCacheKey(kernel: InstalledKernel, kernelStat: { size: number; mtimeMs: number }): string {
  const hash = createHash('sha256')
    .update(`${kernel.version}\n${kernelStat.size}\n${kernelStat.mtimeMs}\n${INITRAMFS_CONF}\n${INITRAMFS_MODULES}`)
    .digest('hex')
    .slice(0, 16);
  return `${kernel.version}-${hash}`;
}

export interface BuiltInitramfs {
  path: string;
  /** false when it came from the cache. */
  built: boolean;
  ms: number;
}

/**
 * An NFS-capable initramfs made by `mkinitramfs` with our own config directory, cached under
 * os.tmpdir() per kernel version and config (a build takes seconds and the cache makes reruns free).
 */
export function netbootInitramfs(kernel: InstalledKernel): BuiltInitramfs {
  const started = Date.now();
  const cacheDir = join(tmpdir(), 'iot-tofu-initramfs-cache');
  const path = join(cacheDir, `initramfs-${initramfsCacheKey(kernel, statSync(kernel.vmlinuz))}.img`);
  if (existsSync(path)) return { path, built: false, ms: Date.now() - started };
  mkdirSync(cacheDir, { recursive: true });
  const confDir = join(cacheDir, `conf-${process.pid}`);
  for (const sub of ['conf.d', 'hooks', 'scripts']) mkdirSync(join(confDir, sub), { recursive: true });
  writeFileSync(join(confDir, 'initramfs.conf'), INITRAMFS_CONF);
  writeFileSync(join(confDir, 'modules'), INITRAMFS_MODULES);
  const partial = `${path}.${process.pid}.partial`;
  try {
    execFileSync('mkinitramfs', ['-d', confDir, '-o', partial, kernel.version], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    // Rename last: a concurrent or interrupted run never sees half a file.
    renameSync(partial, path);
  } finally {
    rmSync(confDir, { recursive: true, force: true });
    rmSync(partial, { force: true });
  }
  return { path, built: true, ms: Date.now() - started };
}

/** A Pi OS (bookworm/trixie) cmdline.txt as Raspberry Pi Imager leaves it on the boot partition. */
export const PI_OS_CMDLINE =
  'console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot cfg80211.ieee80211_regdom=DE\n';

/**
 * A boot folder laid out like Pi OS's boot partition: the Pi firmware files `setup` requires
 * (placeholder bytes: no emulator runs them), config.txt with auto_initramfs=1, cmdline.txt, and
 * the real x86 kernel and initramfs under the Pi 3/4 names kernel8.img and initramfs8.
 */
export function makePiOsBootDir(dir: string, files: { kernel: string; initramfs: string }): void {
  mkdirSync(dir, { recursive: true });
  for (const name of allRequiredBootFiles()) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), `placeholder for ${name}\n`);
  }
  writeFileSync(join(dir, 'config.txt'), '[all]\narm_64bit=1\nauto_initramfs=1\nenable_uart=1\n');
  writeFileSync(join(dir, 'cmdline.txt'), PI_OS_CMDLINE);
  copyFileSync(files.kernel, join(dir, 'kernel8.img'));
  copyFileSync(files.initramfs, join(dir, 'initramfs8'));
}

/** What the root's init prints first: the marker, then the Pi's name, so the root is this Pi's copy. */
export const INIT_MARKER = 'IOT-TOFU-INIT-REACHED';

/**
 * The init of the test root: marker + hostname (written by `pxetools --add`), the kernel command
 * line and /proc/mounts, then power off (QEMU runs with -no-reboot, so it exits).
 */
export const INIT_SCRIPT = `#!/bin/busybox sh
export PATH=/bin:/sbin
[ -e /proc/mounts ] || busybox mount -t proc proc /proc
echo "${INIT_MARKER} $(busybox cat /etc/hostname)"
echo "cmdline: $(busybox cat /proc/cmdline)"
echo "--- /proc/mounts"
busybox cat /proc/mounts
echo "--- end"
busybox sync
busybox poweroff -f
echo o > /proc/sysrq-trigger
`;

/** Shared libraries `ldd` names for a binary (absolute paths), so a dynamic busybox runs in the root. */
export function sharedLibraries(lddOutput: string): string[] {
  const libraries = new Set<string>();
  for (const line of lddOutput.split('\n')) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (match?.[1]) libraries.add(match[1]);
  }
  return [...libraries];
}

/**
 * A minimal x86 root: the host's busybox with its libraries at their own paths, the directories
 * the initramfs moves /dev, /proc, /sys and /run into, boot/firmware (so setup sees a bookworm
 * layout), and the marker init both at /sbin/init and at Pi OS's firstboot path (cmdline.txt of a
 * fresh Pi OS points init= there).
 */
export function makeBusyboxRoot(dir: string, busybox = '/bin/busybox'): void {
  for (const sub of ['bin', 'sbin', 'etc', 'dev', 'proc', 'sys', 'run', 'tmp', 'boot/firmware', 'usr/lib/raspberrypi-sys-mods'])
    mkdirSync(join(dir, sub), { recursive: true });
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  for (const library of sharedLibraries(execFileSync('ldd', [busybox], { encoding: 'utf8' }))) {
    mkdirSync(dirname(join(dir, library)), { recursive: true });
    copyFileSync(library, join(dir, library));
  }
  symlinkSync('busybox', join(dir, 'bin', 'sh'));
  writeFileSync(join(dir, 'sbin', 'init'), INIT_SCRIPT, { mode: 0o755 });
  writeFileSync(join(dir, 'usr/lib/raspberrypi-sys-mods', 'firstboot'), INIT_SCRIPT, { mode: 0o755 });
  writeFileSync(join(dir, 'etc', 'hostname'), 'base\n');
  writeFileSync(join(dir, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  writeFileSync(join(dir, 'etc', 'fstab'), 'proc /proc proc defaults 0 0\n');
}

/** The Pi's cmdline.txt with its console= arguments replaced by QEMU's first serial port, nothing else. */
export function withSerialConsole(cmdline: string): string {
  const args = cmdline.trim().split(/\s+/).filter(Boolean);
  const first = args.findIndex((arg) => arg.startsWith('console='));
  const rest = args.filter((arg) => !arg.startsWith('console='));
  if (first < 0) return ['console=ttyS0,115200', ...rest].join(' ');
  rest.splice(first, 0, 'console=ttyS0,115200');
  return rest.join(' ');
}

/** The iPXE script that stands in for the Pi firmware: the Pi's own kernel, initramfs and cmdline. */
export function ipxeScript(options: { serverIp: string; folder: string; cmdline: string }): string {
  const url = (file: string) => `tftp://${options.serverIp}/${options.folder}/${file}`;
  return [
    '#!ipxe',
    `echo iot-tofu: netbooting ${options.folder} like its Pi firmware would`,
    `kernel ${url('kernel8.img')} ${withSerialConsole(options.cmdline)}`,
    `initrd ${url('initramfs8')}`,
    'boot',
    '',
  ].join('\n');
}
