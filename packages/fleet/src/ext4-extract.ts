import { open, mkdir, symlink, lchown, chmod, lutimes, link, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommandRunner } from '@iot-tofu/nfs-server-lite';
import { DecodeError } from '@iot-tofu/errors';
import {
  ROOT_INODE,
  INODE_FLAG_EXTENTS,
  INODE_FLAG_INLINE_DATA,
  decodeBlockPointers,
  decodeDevice,
  decodeDirBlock,
  decodeExtentNode,
  decodeGroupInodeTable,
  decodeInode,
  decodeSuperblock,
  decodeXattrBlock,
  groupTableOffset,
  type BlockRun,
  type Inode,
  type Superblock,
  type XattrEntry,
} from './ext4.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

export interface ExtractStats {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  fifos: number;
  xattrs: number;
  /** Sockets cannot be created from a file; they are recreated by their services at run time. */
  skippedSockets: number;
  bytes: number;
}

/** Reads an ext4 filesystem that starts `offset` bytes into `image`. */
export class Ext4Reader {
  private groupTables = new Map<number, number>();

  private constructor(
    private readonly handle: FileHandle,
    private readonly offset: number,
    readonly sb: Superblock,
  ) {}

  static async open(image: string, offset: number): Promise<Ext4Reader> {
    const handle = await open(image, 'r');
    try {
      const sbBytes = await readAt(handle, offset + 1024, 1024);
      const sb = decodeSuperblock(sbBytes);
      return new Ext4Reader(handle, offset, sb);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  readBytes(position: number, length: number): Promise<Uint8Array> {
    return readAt(this.handle, this.offset + position, length);
  }

  readBlock(block: number, count = 1): Promise<Uint8Array> {
    if (block >= this.sb.blocksCount) throw new DecodeError(`block ${block} is past the end of the filesystem`, block);
    return this.readBytes(block * this.sb.blockSize, count * this.sb.blockSize);
  }

  private async inodeTable(group: number): Promise<number> {
    let table = this.groupTables.get(group);
    if (table === undefined) {
      const bytes = await this.readBytes(groupTableOffset(this.sb) + group * this.sb.descSize, this.sb.descSize);
      table = decodeGroupInodeTable(bytes, this.sb);
      this.groupTables.set(group, table);
    }
    return table;
  }

  async inode(number: number): Promise<Inode> {
    if (number < 1 || number > this.sb.inodesCount) throw new DecodeError(`inode ${number} is out of range`, number);
    const group = Math.floor((number - 1) / this.sb.inodesPerGroup);
    const index = (number - 1) % this.sb.inodesPerGroup;
    const table = await this.inodeTable(group);
    const bytes = await this.readBytes(table * this.sb.blockSize + index * this.sb.inodeSize, this.sb.inodeSize);
    return decodeInode(bytes, this.sb.inodeSize);
  }

  /** The runs of a file's data blocks, in logical order (holes are simply absent). */
  async runs(inode: Inode): Promise<BlockRun[]> {
    if (inode.flags & INODE_FLAG_EXTENTS) {
      const out: BlockRun[] = [];
      const walk = async (bytes: Uint8Array, level: number): Promise<void> => {
        if (level > 6) throw new DecodeError('extent tree is too deep', 0);
        const node = decodeExtentNode(bytes);
        out.push(...node.runs);
        for (const child of node.children) await walk(await this.readBlock(child), level + 1);
      };
      await walk(inode.block, 0);
      return out.sort((a, b) => a.logical - b.logical);
    }
    const perBlock = this.sb.blockSize / 4;
    const out: BlockRun[] = [];
    const push = (logical: number, physical: number) => {
      if (physical === 0) return;
      const last = out[out.length - 1];
      if (last && last.logical + last.count === logical && last.physical + last.count === physical) last.count++;
      else out.push({ logical, physical, count: 1, uninit: false });
    };
    const pointers = decodeBlockPointers(inode.block);
    const totalBlocks = Math.ceil(inode.size / this.sb.blockSize);
    for (let i = 0; i < 12 && i < totalBlocks; i++) push(i, pointers[i] ?? 0);
    const indirect = async (block: number, level: number, first: number): Promise<void> => {
      if (block === 0 || first >= totalBlocks) return;
      const entries = decodeBlockPointers(await this.readBlock(block));
      const span = perBlock ** (level - 1);
      for (let i = 0; i < entries.length; i++) {
        const logical = first + i * span;
        if (logical >= totalBlocks) break;
        if (level === 1) push(logical, entries[i] ?? 0);
        else await indirect(entries[i] ?? 0, level - 1, logical);
      }
    };
    await indirect(pointers[12] ?? 0, 1, 12);
    await indirect(pointers[13] ?? 0, 2, 12 + perBlock);
    await indirect(pointers[14] ?? 0, 3, 12 + perBlock + perBlock ** 2);
    return out;
  }

  /** Whole content of a small file (directories, long symlink targets). */
  async contents(inode: Inode): Promise<Uint8Array> {
    if (inode.flags & INODE_FLAG_INLINE_DATA) throw new DecodeError('inline-data inodes are not supported (mkfs.ext4 -O ^inline_data)', 0);
    const out = new Uint8Array(inode.size);
    for (const run of await this.runs(inode)) {
      const start = run.logical * this.sb.blockSize;
      if (start >= inode.size || run.uninit) continue;
      const bytes = await this.readBlock(run.physical, run.count);
      out.set(bytes.subarray(0, Math.min(bytes.length, inode.size - start)), start);
    }
    return out;
  }

  async xattrs(inode: Inode): Promise<XattrEntry[]> {
    const out = [...inode.inlineXattrs];
    if (inode.fileAcl) out.push(...decodeXattrBlock(await this.readBlock(inode.fileAcl)));
    return out.filter((x) => x.name !== 'system.data');
  }
}

/** Runs at most `max` tasks at once (a tiny p-limit). */
function concurrencyLimit(max: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: Array<() => void> = [];
  return async (task) => {
    if (active >= max) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) throw new DecodeError(`image ends before byte ${position + length}`, position + done);
    done += bytesRead;
  }
  return buffer;
}

/** Escapes a path for a getfattr/setfattr dump file (octal for anything unusual). */
function dumpPath(path: string): string {
  let out = '';
  for (const byte of Buffer.from(path)) {
    if (byte <= 0x20 || byte >= 0x7f || byte === 0x5c || byte === 0x3d || byte === 0x22) out += `\\${byte.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(byte);
  }
  return out;
}

/**
 * Writes the whole filesystem below `dest` with owners, modes (setuid/setgid/sticky), times,
 * symlinks, hardlinks, device nodes, FIFOs and xattrs. Needs root (chown, mknod, security.*).
 */
export async function extractExt4(
  image: string,
  offset: number,
  dest: string,
  options: { runner: CommandRunner; onBytes?: (bytes: number) => void },
): Promise<ExtractStats> {
  const reader = await Ext4Reader.open(image, offset);
  const stats: ExtractStats = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, devices: 0, fifos: 0, xattrs: 0, skippedSockets: 0, bytes: 0 };
  const linked = new Map<number, { path: string; ready: Promise<unknown> }>();
  const dirTimes: Array<{ path: string; inode: Inode }> = [];
  let xattrDump = '';
  const bs = reader.sb.blockSize;
  try {
    const applyMeta = async (path: string, inode: Inode, isLink: boolean) => {
      await lchown(path, inode.uid, inode.gid);
      // chown clears setuid/setgid, so the mode goes on afterwards.
      if (!isLink) await chmod(path, inode.mode & 0o7777);
      const xattrs = await reader.xattrs(inode);
      if (xattrs.length) {
        xattrDump += `# file: ${dumpPath(path)}\n`;
        for (const x of xattrs) xattrDump += `${x.name}=0x${Buffer.from(x.value).toString('hex')}\n`;
        xattrDump += '\n';
        stats.xattrs += xattrs.length;
      }
    };
    const writeRegular = async (path: string, inode: Inode) => {
      if (inode.flags & INODE_FLAG_INLINE_DATA) throw new DecodeError(`${path}: inline-data files are not supported`, 0);
      const out = await open(path, 'wx', 0o600);
      try {
        for (const run of await reader.runs(inode)) {
          if (run.uninit) continue;
          const chunk = 256;
          for (let i = 0; i < run.count; i += chunk) {
            const count = Math.min(chunk, run.count - i);
            const start = (run.logical + i) * bs;
            if (start >= inode.size) break;
            const bytes = await reader.readBlock(run.physical + i, count);
            const length = Math.min(bytes.length, inode.size - start);
            await out.write(bytes, 0, length, start);
            stats.bytes += length;
            options.onBytes?.(length);
          }
        }
        await out.truncate(inode.size);
      } finally {
        await out.close();
      }
    };
    const times = (inode: Inode): [number, number] => [inode.atime.sec + inode.atime.nsec / 1e9, inode.mtime.sec + inode.mtime.nsec / 1e9];
    /** One non-directory entry: create it with its data and metadata. */
    const writeEntry = async (path: string, number: number, inode: Inode): Promise<void> => {
      const type = inode.mode & S_IFMT;
      if (type === S_IFREG) {
        await writeRegular(path, inode);
        stats.files++;
        await applyMeta(path, inode, false);
        await lutimes(path, ...times(inode));
      } else if (type === S_IFLNK) {
        const fast = !(inode.flags & (INODE_FLAG_EXTENTS | INODE_FLAG_INLINE_DATA)) && inode.size < 60;
        const targetBytes = fast ? inode.block.subarray(0, inode.size) : (await reader.contents(inode)).subarray(0, inode.size);
        await symlink(Buffer.from(targetBytes).toString('utf8'), path);
        stats.symlinks++;
        await applyMeta(path, inode, true);
        await lutimes(path, ...times(inode));
      } else if (type === S_IFCHR || type === S_IFBLK || type === S_IFIFO) {
        const mknodArgs = ['-m', (inode.mode & 0o7777).toString(8), path];
        if (type === S_IFIFO) mknodArgs.push('p');
        else {
          const { major, minor } = decodeDevice(inode.block);
          mknodArgs.push(type === S_IFCHR ? 'c' : 'b', String(major), String(minor));
        }
        await options.runner('mknod', mknodArgs);
        if (type === S_IFIFO) stats.fifos++;
        else stats.devices++;
        await applyMeta(path, inode, false);
        await lutimes(path, ...times(inode));
      } else if (type === S_IFSOCK) {
        stats.skippedSockets++;
      } else {
        throw new DecodeError(`${path}: unknown file type 0o${type.toString(8)} (inode ${number})`, 0);
      }
    };
    // Entries are written concurrently (bounded): one at a time, the per-file round trips to the
    // thread pool dominate. Directories recurse outside the limit so a parent never waits for a
    // slot its own children hold.
    const limit = concurrencyLimit(32);
    const walk = async (dirInode: Inode, dirPath: string): Promise<void> => {
      const data = await reader.contents(dirInode);
      const jobs: Promise<void>[] = [];
      for (let at = 0; at < data.length; at += bs) {
        for (const entry of decodeDirBlock(data.subarray(at, at + bs), reader.sb.hasFiletype)) {
          if (entry.name.includes('/') || entry.name === '') throw new DecodeError(`directory entry ${JSON.stringify(entry.name)} is not a valid name`, at);
          const path = join(dirPath, entry.name);
          jobs.push(
            (async () => {
              const inode = await limit(() => reader.inode(entry.inode));
              const type = inode.mode & S_IFMT;
              if (type === S_IFDIR) {
                await limit(() => mkdir(path, { mode: 0o700 }));
                stats.dirs++;
                await walk(inode, path);
                await limit(() => applyMeta(path, inode, false));
                dirTimes.push({ path, inode });
                return;
              }
              if (inode.linksCount > 1) {
                // Later names of a hardlinked inode wait until the first one exists, then link to it.
                const first = linked.get(entry.inode);
                if (first) {
                  await first.ready;
                  await limit(() => link(first.path, path));
                  stats.hardlinks++;
                  return;
                }
                const ready = limit(() => writeEntry(path, entry.inode, inode));
                linked.set(entry.inode, { path, ready: ready.catch(() => undefined) });
                await ready;
                return;
              }
              await limit(() => writeEntry(path, entry.inode, inode));
            })(),
          );
        }
      }
      const results = await Promise.allSettled(jobs);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    };
    const root = await reader.inode(ROOT_INODE);
    if ((root.mode & S_IFMT) !== S_IFDIR) throw new DecodeError('inode 2 is not a directory', 0);
    await mkdir(dest, { recursive: true, mode: 0o755 });
    await walk(root, dest);
    await applyMeta(dest, root, false);
    dirTimes.push({ path: dest, inode: root });
    if (xattrDump) {
      const dumpFile = join(dest, '..', `.xattrs-${process.pid}-${Date.now()}.dump`);
      await writeFile(dumpFile, xattrDump, { mode: 0o600 });
      try {
        await options.runner('setfattr', ['-h', `--restore=${dumpFile}`]);
      } finally {
        await import('node:fs/promises').then((fs) => fs.rm(dumpFile, { force: true }));
      }
    }
    // Directory times last: creating entries inside a directory bumps its mtime.
    for (const { path, inode } of dirTimes) await lutimes(path, inode.atime.sec + inode.atime.nsec / 1e9, inode.mtime.sec + inode.mtime.nsec / 1e9);
    return stats;
  } finally {
    await reader.close();
  }
}
