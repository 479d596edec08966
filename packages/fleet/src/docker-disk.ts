import { chmod, mkdir, mkdtemp, open, rm, stat, truncate } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CommandFailedError, type CommandRunner } from '@iot-tofu/host-io';
import {
  CONTAINERD_MOUNT_UNIT,
  DOCKER_DISK_CONTAINERD_DIR,
  DOCKER_DISK_DROPIN,
  DOCKER_DISK_MOUNT_UNIT,
  DOCKER_DISK_PATH,
  parseSerial,
  renderDockerDiskDropIn,
  renderDockerDiskUnits,
} from '@iot-tofu/rpi';
import type { FleetCore } from './core.js';
import { FleetError } from './errors.js';
import { safeParent, type RootfsAction } from './rootfs.js';
import { settlePi } from './settle.js';
import type { ResizeDockerDiskResult } from './types.js';
import { ownBy } from './fs-util.js';

/**
 * A Pi's docker disk: a sparse ext4 image inside its own NFS root (`<nfsRoot>/<serial>/var/lib/
 * iot-tofu/docker.img`), loop-mounted at /var/lib/docker by the Pi (units from
 * packages/rpi renderDockerDiskUnits). The server never loop-mounts anything: the file is made
 * with ftruncate and `mkfs.ext4 -F` on the file, grown with `resize2fs` on the file.
 *
 * Why an image file and not NBD or iSCSI: the file lives in the Pi's tree, so add builds it in the
 * temp tree and commits it with the same rename, remove deletes it with the tree, and a kill at any
 * point leaves nothing (intents.ts); nothing else runs on the server. NBD (nbd-server, one export
 * per Pi, nbd-client + a systemd unit and the nbd module in the Pi's initramfs-free userspace) or
 * iSCSI (targetcli state, open-iscsi on the Pi) would each add a daemon and its configuration to
 * keep in step with the registry, and a second network protocol the Pi must reach before Docker
 * starts; they win only when several Pis share one block device, which Docker storage never does.
 * The cost of the file is a double write path (ext4 journal inside a file on NFS, sync export): fine
 * for image pulls and container logs, not for a database; such Pis want a USB disk.
 */

/** Image path relative to the Pi's root. */
export const DOCKER_DISK_IMAGE = DOCKER_DISK_PATH.slice(1);
export { DOCKER_DISK_MOUNT_UNIT };

/** What `dockerDisk: true` (the boolean of earlier releases) means when no default is configured. */
export const DOCKER_DISK_DEFAULT_SIZE = '8G';

/** Smallest docker disk: mkfs.ext4 needs a few MiB, Docker itself far more (documented: 8G and up). */
export const DOCKER_DISK_MIN_BYTES = 32 * 1024 * 1024;
export const DOCKER_DISK_MAX_BYTES = 16 * 1024 ** 4;

/**
 * A docker disk size as the CLI and the API accept it (the API's schema takes its source): digits,
 * an optional K/M/G/T, an optional B or iB, any case. No flags, so JSON schema compiles it as is.
 */
export const DISK_SIZE_PATTERN = /^(\d{1,16})\s*([KMGTkmgt]?)(?:[iI]?[bB])?$/;

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * '8G', '512M', '8GiB', '8589934592' (bytes) → bytes, binary units like truncate(1); '0' → 0
 * (no docker disk). Rounded up to whole MiB. Pure; INVALID_REQUEST with the rule otherwise.
 */
export function parseDiskSize(text: string): number {
  const match = DISK_SIZE_PATTERN.exec(text.trim());
  if (!match)
    throw new FleetError('INVALID_REQUEST', `docker disk size ${JSON.stringify(text)} is not a size: use e.g. 8G, 512M or 0 for none`);
  const bytes = Number(match[1]) * UNITS[match[2]!.toUpperCase()]!;
  if (bytes === 0) return 0;
  const rounded = Math.ceil(bytes / 1024 ** 2) * 1024 ** 2;
  if (rounded < DOCKER_DISK_MIN_BYTES)
    throw new FleetError('INVALID_REQUEST', `docker disk size ${text} is below the minimum of 32M (Docker wants 8G or more)`);
  if (rounded > DOCKER_DISK_MAX_BYTES) throw new FleetError('INVALID_REQUEST', `docker disk size ${text} is above the maximum of 16T`);
  return rounded;
}

/**
 * The rootfs changes that mount the docker disk on the Pi: its units, their wants symlinks
 * (local-fs.target) and the docker/containerd drop-ins. `e2fsck` is the path the unit runs. Pure.
 */
export function planDockerDiskUnits(e2fsck = '/sbin/e2fsck'): RootfsAction[] {
  const actions: RootfsAction[] = [];
  for (const [name, content] of Object.entries(renderDockerDiskUnits(e2fsck))) {
    actions.push({ kind: 'write', path: `etc/systemd/system/${name}`, content, mode: 0o644 });
  }
  for (const unit of [DOCKER_DISK_MOUNT_UNIT, CONTAINERD_MOUNT_UNIT]) {
    actions.push({ kind: 'symlink', path: `etc/systemd/system/local-fs.target.wants/${unit}`, target: `/etc/systemd/system/${unit}` });
  }
  for (const service of ['docker.service', 'containerd.service']) {
    actions.push({
      kind: 'write',
      path: `etc/systemd/system/${service}.d/${DOCKER_DISK_DROPIN}`,
      content: renderDockerDiskDropIn(),
      mode: 0o644,
    });
  }
  return actions;
}

/** The base's e2fsck as the Pi sees it (merged /usr or not); /sbin/e2fsck when the base has none. */
export async function findE2fsck(root: string): Promise<string> {
  for (const path of ['usr/sbin/e2fsck', 'sbin/e2fsck']) {
    const info = await stat(join(root, path)).catch(() => undefined);
    if (info?.isFile()) return `/${path}`;
  }
  return '/sbin/e2fsck';
}

/**
 * Makes the image inside a Pi root (the temp tree of an add): a sparse file of `bytes`, ext4 with
 * lazy inode-table init (the Pi's kernel finishes it in the background), no reserved blocks, the
 * containerd directory seeded in (mkfs -d). No loop device, no mount.
 */
export async function makeDockerDisk(runner: CommandRunner, root: string, bytes: number): Promise<string> {
  const image = await safeParent(root, DOCKER_DISK_IMAGE);
  const seed = await mkdtemp(join(dirname(image), '.seed-'));
  try {
    await chmod(seed, 0o711);
    await mkdir(join(seed, DOCKER_DISK_CONTAINERD_DIR), { mode: 0o711 });
    const handle = await open(image, 'wx', 0o600);
    try {
      await handle.truncate(bytes);
    } finally {
      await handle.close();
    }
    await ownBy(image, 0, 0);
    try {
      await runner('mkfs.ext4', ['-F', '-q', '-L', 'docker', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-d', seed, image]);
    } catch (error) {
      throw new FleetError('DOCKER_DISK_FAILED', `mkfs.ext4 of the docker disk failed: ${(error as Error).message}`, { cause: error });
    }
  } finally {
    await rm(seed, { recursive: true, force: true });
  }
  return image;
}

/** e2fsck -f -p on an image: exit 0 clean, 1 repaired; anything else is an error. */
async function checkImage(runner: CommandRunner, image: string): Promise<void> {
  try {
    await runner('e2fsck', ['-f', '-p', image]);
  } catch (error) {
    if (error instanceof CommandFailedError && error.exitCode === 1) return;
    throw new FleetError(
      'DOCKER_DISK_FAILED',
      `e2fsck of ${image} failed; repair it by hand (e2fsck -f ${image}) with the Pi off: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * Grows a Pi's docker disk: e2fsck -f, the sparse file made larger, resize2fs on the file. Offline
 * only: the Pi must be off (the server cannot tell whether the Pi has the image mounted; the CLI
 * asks for --yes). Shrinking is refused. A kill between the steps leaves a valid filesystem (the
 * file may be larger than it): running the resize again finishes it.
 */
export async function resizeDockerDisk(core: FleetCore, serialInput: string, size: string): Promise<ResizeDockerDiskResult> {
  const short = parseSerial(serialInput).short;
  core.requireRoot('resize-docker-disk');
  const bytes = parseDiskSize(size);
  if (bytes === 0) throw new FleetError('INVALID_REQUEST', 'a docker disk cannot be resized to 0; remove and add the Pi again without one');
  const release = await core.lockPi(short);
  try {
    await settlePi(core, short);
    await core.reload();
    const entry = core.data.pis[short];
    if (!entry) throw new FleetError('PI_NOT_FOUND', `Pi ${short} is not registered`);
    if (!entry.dockerDisk) throw new FleetError('INVALID_REQUEST', `Pi ${short} has no docker disk (add it with --docker-disk SIZE)`);
    const image = join(core.nfsRoot, short, entry.dockerDisk.path);
    const fromBytes = entry.dockerDisk.bytes;
    const current = (await stat(image)).size;
    if (bytes < current) throw new FleetError('INVALID_REQUEST', `docker disk of ${short} is ${current} bytes; shrinking is not supported`);
    await checkImage(core.runner, image);
    if (bytes > current) await truncate(image, bytes);
    try {
      await core.runner('resize2fs', [image]);
    } catch (error) {
      throw new FleetError(
        'DOCKER_DISK_FAILED',
        `resize2fs ${image} failed (the filesystem keeps its old size; run the resize again): ${(error as Error).message}`,
        { cause: error },
      );
    }
    const path = entry.dockerDisk.path;
    await core.store.mutate((data) => {
      const pi = data.pis[short];
      if (!pi) throw new FleetError('PI_NOT_FOUND', `Pi ${short} was removed meanwhile`);
      pi.dockerDisk = { path, bytes };
      return { write: true, value: undefined };
    });
    await core.reload();
    core.logger.info({ serial: short, fromBytes, bytes }, 'docker disk resized');
    return { serial: short, fromBytes, bytes };
  } finally {
    await release();
  }
}
