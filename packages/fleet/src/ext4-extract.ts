import {
  closeSync,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  lchownSync,
  chmodSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readSync,
  symlinkSync,
  writeSync,
  constants,
} from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommandRunner } from '@iot-tofu/host-io';
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

/**
 * Reads an ext4 filesystem that starts `offset` bytes into an image. Synchronous on purpose: a root
 * filesystem is tens of thousands of tiny reads, and the extractor yields to the event loop often
 * enough (see `Yielder`) that a daemon running it keeps answering.
 */
export class Ext4Reader {
  private readonly groupTables = new Map<number, number>();
  readonly sb: Superblock;

  constructor(
    private readonly fd: number,
    private readonly offset: number,
  ) {
    this.sb = decodeSuperblock(this.readBytes(1024, 1024));
    // Without replaying the journal, metadata could be stale: refuse rather than copy wrong files.
    if (this.sb.needsRecovery)
      throw new DecodeError('the filesystem was not unmounted cleanly (its journal needs recovery); run e2fsck on it first', 0x60);
  }

  readBytes(position: number, length: number): Uint8Array {
    const buffer = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buffer, done, length - done, this.offset + position + done);
      if (n === 0) throw new DecodeError(`image ends before byte ${this.offset + position + length}`, position + done);
      done += n;
    }
    return buffer;
  }

  readBlock(block: number, count = 1): Uint8Array {
    if (block + count > this.sb.blocksCount) throw new DecodeError(`block ${block} is past the end of the filesystem`, block);
    return this.readBytes(block * this.sb.blockSize, count * this.sb.blockSize);
  }

  private inodeTable(group: number): number {
    let table = this.groupTables.get(group);
    if (table === undefined) {
      table = decodeGroupInodeTable(this.readBytes(groupTableOffset(this.sb) + group * this.sb.descSize, this.sb.descSize), this.sb);
      this.groupTables.set(group, table);
    }
    return table;
  }

  inode(number: number): Inode {
    if (number < 1 || number > this.sb.inodesCount) throw new DecodeError(`inode ${number} is out of range`, number);
    const group = Math.floor((number - 1) / this.sb.inodesPerGroup);
    const index = (number - 1) % this.sb.inodesPerGroup;
    const bytes = this.readBytes(this.inodeTable(group) * this.sb.blockSize + index * this.sb.inodeSize, this.sb.inodeSize);
    return decodeInode(bytes, this.sb.inodeSize);
  }

  /** The runs of a file's data blocks, in logical order (holes are simply absent). */
  runs(inode: Inode): BlockRun[] {
    if (inode.flags & INODE_FLAG_EXTENTS) {
      const out: BlockRun[] = [];
      const walk = (bytes: Uint8Array, level: number): void => {
        if (level > 6) throw new DecodeError('extent tree is too deep', 0);
        const node = decodeExtentNode(bytes);
        out.push(...node.runs);
        for (const child of node.children) walk(this.readBlock(child), level + 1);
      };
      walk(inode.block, 0);
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
    const indirect = (block: number, level: number, first: number): void => {
      if (block === 0 || first >= totalBlocks) return;
      const entries = decodeBlockPointers(this.readBlock(block));
      const span = perBlock ** (level - 1);
      for (let i = 0; i < entries.length; i++) {
        const logical = first + i * span;
        if (logical >= totalBlocks) break;
        if (level === 1) push(logical, entries[i] ?? 0);
        else indirect(entries[i] ?? 0, level - 1, logical);
      }
    };
    indirect(pointers[12] ?? 0, 1, 12);
    indirect(pointers[13] ?? 0, 2, 12 + perBlock);
    indirect(pointers[14] ?? 0, 3, 12 + perBlock + perBlock ** 2);
    return out;
  }

  /** Whole content of a small file (directories, long symlink targets). */
  contents(inode: Inode): Uint8Array {
    if (inode.flags & INODE_FLAG_INLINE_DATA) throw new DecodeError('inline-data inodes are not supported (mkfs.ext4 -O ^inline_data)', 0);
    const out = new Uint8Array(inode.size);
    for (const run of this.runs(inode)) {
      const start = run.logical * this.sb.blockSize;
      if (start >= inode.size || run.uninit) continue;
      const bytes = this.readBlock(run.physical, run.count);
      out.set(bytes.subarray(0, Math.min(bytes.length, inode.size - start)), start);
    }
    return out;
  }

  xattrs(inode: Inode): XattrEntry[] {
    const out = [...inode.inlineXattrs];
    if (inode.fileAcl) out.push(...decodeXattrBlock(this.readBlock(inode.fileAcl)));
    return out.filter((x) => x.name !== 'system.data');
  }
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

/** Gives the event loop a turn every `sliceMs` of synchronous work. */
class Yielder {
  private last = performance.now();
  constructor(private readonly sliceMs: number) {}
  async maybe(): Promise<void> {
    if (performance.now() - this.last < this.sliceMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.last = performance.now();
  }
}

const CHUNK_BLOCKS_BYTES = 1024 * 1024;

/**
 * Writes the whole filesystem below `dest` with owners, modes (setuid/setgid/sticky), times,
 * symlinks, hardlinks, device nodes, FIFOs and xattrs. Needs root (chown, mknod, security.*).
 */
export async function extractExt4(
  image: string,
  offset: number,
  dest: string,
  options: { runner: CommandRunner; onBytes?: (bytes: number) => void; onStart?: (usedBytes: number) => void; sliceMs?: number },
): Promise<ExtractStats> {
  const fd = openSync(image, 'r');
  const stats: ExtractStats = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    devices: 0,
    fifos: 0,
    xattrs: 0,
    skippedSockets: 0,
    bytes: 0,
  };
  const linked = new Map<number, string>();
  const dirTimes: Array<{ path: string; inode: Inode }> = [];
  const yielder = new Yielder(options.sliceMs ?? 20);
  let xattrDump = '';
  try {
    const reader = new Ext4Reader(fd, offset);
    const bs = reader.sb.blockSize;
    options.onStart?.((reader.sb.blocksCount - reader.sb.freeBlocksCount) * bs);
    const chunkBlocks = Math.max(1, CHUNK_BLOCKS_BYTES / bs);
    const times = (inode: Inode): [number, number] => [inode.atime.sec + inode.atime.nsec / 1e9, inode.mtime.sec + inode.mtime.nsec / 1e9];
    const noteXattrs = (path: string, inode: Inode) => {
      const xattrs = reader.xattrs(inode);
      if (!xattrs.length) return;
      xattrDump += `# file: ${dumpPath(path)}\n`;
      for (const x of xattrs) xattrDump += `${x.name}=0x${Buffer.from(x.value).toString('hex')}\n`;
      xattrDump += '\n';
      stats.xattrs += xattrs.length;
    };
    /** Owner first: chown clears setuid/setgid, so the mode goes on afterwards. */
    const applyMeta = (path: string, inode: Inode, isLink: boolean) => {
      lchownSync(path, inode.uid, inode.gid);
      if (!isLink) chmodSync(path, inode.mode & 0o7777);
      noteXattrs(path, inode);
    };
    const writeRegular = async (path: string, inode: Inode) => {
      if (inode.flags & INODE_FLAG_INLINE_DATA) throw new DecodeError(`${path}: inline-data files are not supported`, 0);
      const out = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        let end = 0;
        for (const run of reader.runs(inode)) {
          if (run.uninit) continue;
          for (let i = 0; i < run.count; i += chunkBlocks) {
            const count = Math.min(chunkBlocks, run.count - i);
            const start = (run.logical + i) * bs;
            if (start >= inode.size) break;
            const bytes = reader.readBlock(run.physical + i, count);
            const length = Math.min(bytes.length, inode.size - start);
            let written = 0;
            while (written < length) written += writeSync(out, bytes, written, length - written, start + written);
            end = start + length;
            stats.bytes += length;
            options.onBytes?.(length);
            await yielder.maybe();
          }
        }
        // Holes at the end (or a file of only holes) still need the right size.
        if (end !== inode.size) ftruncateSync(out, inode.size);
        fchownSync(out, inode.uid, inode.gid);
        fchmodSync(out, inode.mode & 0o7777);
        futimesSync(out, ...times(inode));
      } finally {
        closeSync(out);
      }
      noteXattrs(path, inode);
    };
    const writeEntry = async (path: string, number: number, inode: Inode): Promise<void> => {
      const type = inode.mode & S_IFMT;
      if (type === S_IFREG) {
        await writeRegular(path, inode);
        stats.files++;
      } else if (type === S_IFLNK) {
        const fast = !(inode.flags & (INODE_FLAG_EXTENTS | INODE_FLAG_INLINE_DATA)) && inode.size < 60;
        const targetBytes = fast ? inode.block.subarray(0, inode.size) : reader.contents(inode).subarray(0, inode.size);
        symlinkSync(Buffer.from(targetBytes).toString('utf8'), path);
        stats.symlinks++;
        applyMeta(path, inode, true);
        lutimesSync(path, ...times(inode));
      } else if (type === S_IFCHR || type === S_IFBLK || type === S_IFIFO) {
        // Node has no mknod(2); these are few (an image's /dev is usually empty).
        const mknodArgs = ['-m', (inode.mode & 0o7777).toString(8), path];
        if (type === S_IFIFO) mknodArgs.push('p');
        else {
          const { major, minor } = decodeDevice(inode.block);
          mknodArgs.push(type === S_IFCHR ? 'c' : 'b', String(major), String(minor));
        }
        await options.runner('mknod', mknodArgs);
        if (type === S_IFIFO) stats.fifos++;
        else stats.devices++;
        applyMeta(path, inode, false);
        lutimesSync(path, ...times(inode));
      } else if (type === S_IFSOCK) {
        stats.skippedSockets++;
      } else {
        throw new DecodeError(`${path}: unknown file type 0o${type.toString(8)} (inode ${number})`, 0);
      }
    };
    const walk = async (dirInode: Inode, dirPath: string): Promise<void> => {
      const data = reader.contents(dirInode);
      for (let at = 0; at < data.length; at += bs) {
        for (const entry of decodeDirBlock(data.subarray(at, at + bs), reader.sb.hasFiletype)) {
          if (entry.name.includes('/') || entry.name === '')
            throw new DecodeError(`directory entry ${JSON.stringify(entry.name)} is not a valid name`, at);
          const path = join(dirPath, entry.name);
          const inode = reader.inode(entry.inode);
          if ((inode.mode & S_IFMT) === S_IFDIR) {
            mkdirSync(path, { mode: 0o700 });
            stats.dirs++;
            await walk(inode, path);
            applyMeta(path, inode, false);
            dirTimes.push({ path, inode });
          } else if (inode.linksCount > 1 && linked.has(entry.inode)) {
            linkSync(linked.get(entry.inode)!, path);
            stats.hardlinks++;
          } else {
            if (inode.linksCount > 1) linked.set(entry.inode, path);
            await writeEntry(path, entry.inode, inode);
          }
          await yielder.maybe();
        }
      }
    };
    const root = reader.inode(ROOT_INODE);
    if ((root.mode & S_IFMT) !== S_IFDIR) throw new DecodeError('inode 2 is not a directory', 0);
    mkdirSync(dest, { recursive: true, mode: 0o755 });
    await walk(root, dest);
    applyMeta(dest, root, false);
    dirTimes.push({ path: dest, inode: root });
    if (xattrDump) {
      // One setfattr for all xattrs (Node has no setxattr); after every chown, which would clear
      // security.capability.
      const dumpFile = join(dest, '..', `.xattrs-${process.pid}-${Date.now()}.dump`);
      await writeFile(dumpFile, xattrDump, { mode: 0o600 });
      try {
        await options.runner('setfattr', ['-h', `--restore=${dumpFile}`]);
      } finally {
        await rm(dumpFile, { force: true });
      }
    }
    // Directory times last: creating entries inside a directory bumps its mtime.
    for (const { path, inode } of dirTimes) lutimesSync(path, ...times(inode));
    return stats;
  } finally {
    closeSync(fd);
  }
}
