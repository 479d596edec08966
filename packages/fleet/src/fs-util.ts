import { chown, lstat, readdir, readFile, rm, statfs } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { FleetError } from './errors.js';

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** Mount points listed in a mountinfo text (field 5, octal escapes decoded). Pure. */
export function parseMountinfo(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) out.push(field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))));
  }
  return out;
}

/** Mount points at or below `path` (a bind mount left behind by a chroot, an NFS mount …). */
export async function mountsUnder(path: string, mountinfo = '/proc/self/mountinfo'): Promise<string[]> {
  const text = await readFile(mountinfo, 'utf8').catch(() => '');
  const target = resolve(path);
  return parseMountinfo(text).filter((mount) => isInside(target, mount));
}

/**
 * Deletes a tree without ever leaving it: refuses when anything is mounted inside (upstream's rm -rf
 * could follow fs-gen's bind mounts into the host's /dev, /sys, /proc: docs/pxetools-compat.md E6); symlinks
 * are removed, never followed.
 */
export async function removeTree(path: string): Promise<void> {
  const mounts = await mountsUnder(path);
  if (mounts.length)
    throw new FleetError('PI_MOUNTED', `refusing to delete ${path}: ${mounts.join(', ')} is mounted inside; unmount it first`);
  await rm(path, { recursive: true, force: true });
}

/** Bytes (apparent size of regular files) and entries of a tree, not following symlinks. */
export async function treeSize(root: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const seen = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      const path = join(dir, entry.name);
      files++;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const info = await lstat(path);
        const key = `${info.dev}:${info.ino}`;
        if (info.nlink > 1) {
          if (seen.has(key)) continue;
          seen.add(key);
        }
        bytes += info.size;
      }
    }
  };
  await walk(root);
  return { bytes, files };
}

/** Used bytes of the filesystem holding `path` (for copy progress: grows as cp writes). */
export async function usedBytes(path: string): Promise<number> {
  const info = await statfs(path);
  return (info.blocks - info.bfree) * info.bsize;
}

/**
 * Gives a file we wrote in a Pi's root its owner (root, or the Pi's user). Only root can: the
 * verbs refuse to run without it (NOT_ROOT), so a caller that is not root is a test that injected
 * `isRoot`, and its files keep their creator.
 */
export async function ownBy(path: string, uid: number, gid: number): Promise<void> {
  if (process.geteuid?.() !== 0) return;
  await chown(path, uid, gid);
}

/** True when `child` is `parent` or inside it (plain path comparison). */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep) && rel !== '..');
}
