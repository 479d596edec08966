import { lstat, mkdir, readdir, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { renderFstab, renderHostname, renderHosts } from '@iot-tofu/rpi';
import { FleetError } from './errors.js';
import { ownBy } from './fs-util.js';

/** One change to a Pi's root, relative to that root. */
export type RootfsAction =
  | { kind: 'write'; path: string; content: string; mode: number }
  | { kind: 'remove'; path: string }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'remove-glob'; dir: string; pattern: RegExp };

export interface RootfsPlanInput {
  name: string;
  serverIp: string;
  bootExportPath: string;
  layout: 'bookworm' | 'legacy';
  /** Whether the base uses NetworkManager (Bookworm and later). */
  networkManager: boolean;
  /** Path of the base's ssh.service unit (e.g. /usr/lib/systemd/system/ssh.service) to enable; null when absent. */
  sshUnit?: string | null;
}

/** Units that break or hurt an NFS root: a DHCP client re-configuring eth0, swap on NFS, resizing an SD card. */
export const MASKED_UNITS = ['dhcpcd.service', 'dphys-swapfile.service', 'resize2fs_once.service', 'rpi-resizerootfs.service'];
export const REMOVED_INIT_SCRIPTS = ['dhcpcd', 'dphys-swapfile', 'raspi-config', 'resize2fs_once'];
export const SSH_KEYGEN_UNIT = 'iot-tofu-ssh-host-keys.service';

const SSH_KEYGEN_UNIT_TEXT = `[Unit]
Description=Generate SSH host keys for this Pi (its root was copied from a shared base)
Before=ssh.service sshd.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
`;

/** NetworkManager must leave the interface carrying the NFS root alone. */
const NM_UNMANAGED_TEXT = `# iot-tofu: eth0 carries the NFS root (configured by the kernel, ip=dhcp); never touch it.
[keyfile]
unmanaged-devices=interface-name:eth0
`;

/**
 * What `add` changes in a copied base, as data (pure; tested as a table): hostname, hosts, fstab,
 * units disabled, SSH host keys dropped and regenerated on first boot.
 */
export function planRootfs(input: RootfsPlanInput): RootfsAction[] {
  const bootMountPoint = input.layout === 'bookworm' ? '/boot/firmware' : '/boot';
  const actions: RootfsAction[] = [
    { kind: 'write', path: 'etc/hostname', content: renderHostname(input.name), mode: 0o644 },
    { kind: 'write', path: 'etc/hosts', content: renderHosts(input.name), mode: 0o644 },
    {
      kind: 'write',
      path: 'etc/fstab',
      content: renderFstab({ serverIp: input.serverIp, bootExportPath: input.bootExportPath, bootMountPoint }),
      mode: 0o644,
    },
  ];
  for (const script of REMOVED_INIT_SCRIPTS) actions.push({ kind: 'remove', path: `etc/init.d/${script}` });
  for (const unit of MASKED_UNITS) {
    actions.push({ kind: 'remove', path: `etc/systemd/system/multi-user.target.wants/${unit}` });
    actions.push({ kind: 'symlink', path: `etc/systemd/system/${unit}`, target: '/dev/null' });
  }
  if (input.networkManager)
    actions.push({ kind: 'write', path: 'etc/NetworkManager/conf.d/90-iot-tofu-nfsroot.conf', content: NM_UNMANAGED_TEXT, mode: 0o644 });
  actions.push({ kind: 'remove-glob', dir: 'etc/ssh', pattern: /^ssh_host_.*_key(\.pub)?$/ });
  actions.push({ kind: 'write', path: `etc/systemd/system/${SSH_KEYGEN_UNIT}`, content: SSH_KEYGEN_UNIT_TEXT, mode: 0o644 });
  actions.push({
    kind: 'symlink',
    path: `etc/systemd/system/multi-user.target.wants/${SSH_KEYGEN_UNIT}`,
    target: `/etc/systemd/system/${SSH_KEYGEN_UNIT}`,
  });
  // A headless netbooted Pi is reached over SSH: enable it like upstream's `ssh` file did.
  if (input.sshUnit)
    actions.push({ kind: 'symlink', path: 'etc/systemd/system/multi-user.target.wants/ssh.service', target: input.sshUnit });
  return actions;
}

/**
 * Makes sure every directory from root down to `relPath`'s parent is a real directory inside the
 * root (never a symlink that could lead onto the server's own /etc), creating missing ones.
 */
export async function safeParent(root: string, relPath: string): Promise<string> {
  if (relPath.startsWith('/') || relPath.split('/').includes('..'))
    throw new FleetError('INVALID_REQUEST', `path ${relPath} escapes the Pi root`);
  const parts = relPath.split('/').slice(0, -1);
  let current = root;
  for (const part of parts) {
    current = join(current, part);
    const info = await lstat(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!info) {
      await mkdir(current, { mode: 0o755 });
      await ownBy(current, 0, 0);
    } else if (!info.isDirectory()) {
      throw new FleetError(
        'BASE_INVALID',
        `${relative(root, current)} in the Pi root is not a directory (symlink or file); refusing to write through it`,
      );
    }
  }
  return join(root, relPath);
}

async function removeIfPresent(path: string): Promise<void> {
  await rm(path, { force: true, recursive: false }).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'EISDIR' || error.code === 'ERR_FS_EISDIR') await rm(path, { recursive: true, force: true });
    else throw error;
  });
}

/** Applies planned actions inside `root`; final symlinks are replaced, never written through. */
export async function applyRootfs(root: string, actions: readonly RootfsAction[]): Promise<void> {
  for (const action of actions) {
    if (action.kind === 'remove-glob') {
      const dir = await safeParent(root, `${action.dir}/x`);
      const names = await readdir(dirname(dir)).catch(() => [] as string[]);
      for (const name of names) if (action.pattern.test(name)) await removeIfPresent(join(dirname(dir), name));
      continue;
    }
    const target = await safeParent(root, action.path);
    if (action.kind === 'remove') {
      await removeIfPresent(target);
    } else if (action.kind === 'symlink') {
      await removeIfPresent(target);
      await symlink(action.target, target);
    } else {
      await removeIfPresent(target);
      await writeFile(target, action.content, { mode: action.mode, flag: 'wx' });
      await chmod(target, action.mode);
      await ownBy(target, 0, 0);
    }
  }
}
