import { constants } from 'node:fs';
import { cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FleetCore } from './core.js';
import { exists } from './fs-util.js';
import { CURRENT_LAYOUT } from './registry.js';
import { writeFileAtomic } from '@iot-tofu/host-io';
import { BOOT_MOUNT_OPTIONS, netbootCmdline, NFS_ROOT_MOUNT_OPTIONS, type NetbootCmdline } from '@iot-tofu/rpi';

/**
 * A Pi's boot folder (`<tftpRoot>/<serial>/`, its /boot/firmware over NFS) holds every file it
 * boots from: the base's boot files copied in (reflink where the filesystem can), plus its own
 * cmdline.txt, owner and name. So what the Pi sees under /boot/firmware is what TFTP serves, and
 * what it writes there (a kernel upgrade, a config.txt edit, EEPROM update files) is what it boots
 * next time. Hard links would be free but are unsafe: an editor or `cp` rewriting a file in place
 * would change the base and every other Pi built from it.
 */

/** The Pi's cmdline.txt from its base's (SD-card options replaced by the NFS-root ones). */
export async function cmdlineFromBase(baseBootDir: string | null, serverIp: string, nfsRootPath: string): Promise<NetbootCmdline> {
  const baseLine = baseBootDir ? await readFile(join(baseBootDir, 'cmdline.txt'), 'utf8').catch(() => undefined) : undefined;
  return netbootCmdline(baseLine, { serverIp, nfsRootPath });
}

/**
 * Copies into `dest` each base boot file it lacks, never replacing one the Pi has (its own
 * cmdline.txt, a config.txt it edited, a kernel it upgraded). Copy-on-write clone where the
 * filesystem offers it, a plain copy otherwise.
 */
export async function fillBootFolder(baseBootDir: string, dest: string): Promise<void> {
  await cp(baseBootDir, dest, {
    recursive: true,
    force: false,
    errorOnExist: false,
    preserveTimestamps: true,
    mode: constants.COPYFILE_FICLONE,
  });
}

/**
 * How the first releases wrote the NFS options (klibc nfsmount in Pi OS's initramfs rejects both
 * parts: docs/pi-os-nfs-root.md). Layout 1 = boot folders with only cmdline/owner/name and these options.
 */
const LAYOUT1_NFS_OPTIONS = ',vers=4.1,proto=tcp';

/** The cmdline.txt a layout-1 add wrote (so an untouched one can be rebuilt from the base). */
export function layout1Cmdline(serverIp: string, nfsRootPath: string): string {
  return `console=serial0,115200 console=tty1 root=/dev/nfs nfsroot=${serverIp}:${nfsRootPath}${LAYOUT1_NFS_OPTIONS} rw ip=dhcp rootwait cgroup_enable=cpuset cgroup_memory=1 cgroup_enable=memory\n`;
}

/**
 * A layout-1 cmdline.txt brought to layout 2 (pure): the untouched line is rebuilt from the base;
 * one the operator edited keeps every edit and only gets NFS options the initramfs accepts.
 * Returns null when nothing needs to change.
 */
export function migrateCmdline(current: string, untouched: string, rebuilt: string): string | null {
  if (current === untouched) return rebuilt;
  if (!current.includes(LAYOUT1_NFS_OPTIONS)) return null;
  return current.split(LAYOUT1_NFS_OPTIONS).join(`,${NFS_ROOT_MOUNT_OPTIONS}`);
}

/**
 * The Pi's fstab with the /boot/firmware line (the NFS mount of `bootExportPath`) using today's
 * options (pure). Other lines, and a boot line already current, are left as they are; null when
 * nothing changes.
 */
export function migrateFstab(fstab: string, bootExportPath: string): string | null {
  let changed = false;
  const lines = fstab.split('\n').map((line) => {
    const fields = line.trim().split(/\s+/);
    const [device, mountPoint, type, options, ...rest] = fields;
    if (!device?.endsWith(`:${bootExportPath}`) || type !== 'nfs' || !mountPoint || options === BOOT_MOUNT_OPTIONS) return line;
    changed = true;
    return [device, mountPoint, type, BOOT_MOUNT_OPTIONS, ...(rest.length ? rest : ['0', '0'])].join(' ');
  });
  return changed ? lines.join('\n') : null;
}

export interface MigratePiInput {
  serverIp: string;
  tftpDir: string;
  nfsDir: string;
  /** The base's stored boot files; null for own-filesystem and adopted Pis (nothing to fill in). */
  baseBootDir: string | null;
}

/**
 * Brings one Pi from layout 1 to layout 2: fills its boot folder from its base, fixes the NFS
 * options of its cmdline.txt and fstab. Idempotent, so a run killed halfway is finished by the next.
 */
export async function migratePi(input: MigratePiInput): Promise<{ changed: string[] }> {
  const changed: string[] = [];
  if (input.baseBootDir) {
    await fillBootFolder(input.baseBootDir, input.tftpDir);
    changed.push('boot files');
  }
  const cmdlinePath = join(input.tftpDir, 'cmdline.txt');
  const current = await readFile(cmdlinePath, 'utf8').catch(() => undefined);
  if (current !== undefined) {
    const rebuilt = (await cmdlineFromBase(input.baseBootDir, input.serverIp, input.nfsDir)).text;
    const next = migrateCmdline(current, layout1Cmdline(input.serverIp, input.nfsDir), rebuilt);
    if (next !== null && next !== current) {
      await writeFileAtomic(cmdlinePath, next, 0o644);
      changed.push('cmdline.txt');
    }
  }
  const fstabPath = join(input.nfsDir, 'etc', 'fstab');
  const fstab = await readFile(fstabPath, 'utf8').catch(() => undefined);
  const nextFstab = fstab === undefined ? null : migrateFstab(fstab, input.tftpDir);
  if (nextFstab !== null) {
    await writeFileAtomic(fstabPath, nextFstab, 0o644);
    changed.push('fstab');
  }
  return { changed };
}

/**
 * Brings the Pis of an older release to the current layout (boot-folder.ts): run by whatever
 * opens the fleet as root next (any pxetools verb, `boot-server start`). Under the registry lock;
 * each step is idempotent and the layout is recorded last, so a kill halfway is finished later.
 */
export async function upgradeLayout(core: FleetCore): Promise<void> {
  if (core.data.layout >= CURRENT_LAYOUT || !core.isRoot()) return;
  await core.store.mutate(async (data) => {
    if (data.layout >= CURRENT_LAYOUT) return { write: false, value: undefined };
    for (const pi of Object.values(data.pis)) {
      const tftpDir = join(core.tftpRoot, pi.serial);
      if (!(await exists(tftpDir))) continue;
      const base = pi.base && !pi.ownFilesystem ? data.bases[pi.base] : undefined;
      const { changed } = await migratePi({
        serverIp: core.serverIp,
        tftpDir,
        nfsDir: join(core.nfsRoot, pi.serial),
        baseBootDir: base?.bootDir ?? null,
      });
      core.logger.info({ serial: pi.serial, changed }, 'pi brought to the current layout');
    }
    data.layout = CURRENT_LAYOUT;
    return { write: true, value: undefined };
  });
  await core.reload();
}
