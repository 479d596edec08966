import { DecodeError } from '@iot-tofu/errors';

/**
 * A small read-only ext2/3/4 decoder: superblock, group descriptors, inodes, extent trees, legacy
 * block maps, directory blocks and xattrs. Every function here is pure over bytes; the extractor
 * (ext4-extract.ts) does the reading and writing.
 */

export const EXT4_MAGIC = 0xef53;
const INCOMPAT_FILETYPE = 0x2;
const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_ENCRYPT = 0x10000;
const INCOMPAT_CASEFOLD = 0x20000;

export const INODE_FLAG_EXTENTS = 0x80000;
export const INODE_FLAG_INLINE_DATA = 0x10000000;
export const ROOT_INODE = 2;

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  freeBlocksCount: number;
  blockSize: number;
  firstDataBlock: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  inodeSize: number;
  featureIncompat: number;
  is64bit: boolean;
  descSize: number;
  groupCount: number;
  hasFiletype: boolean;
  needsRecovery: boolean;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function need(bytes: Uint8Array, end: number, what: string): void {
  if (bytes.length < end) throw new DecodeError(`${what} is truncated (need ${end} bytes, have ${bytes.length})`, bytes.length);
}

/** Decodes the 1024-byte superblock (found at byte 1024 of the filesystem). */
export function decodeSuperblock(bytes: Uint8Array): Superblock {
  need(bytes, 0x100, 'superblock');
  const v = viewOf(bytes);
  const magic = v.getUint16(0x38, true);
  if (magic !== EXT4_MAGIC) throw new DecodeError(`not an ext2/3/4 filesystem (magic 0x${magic.toString(16)})`, 0x38);
  const logBlockSize = v.getUint32(0x18, true);
  if (logBlockSize > 6) throw new DecodeError(`block size 2^(10+${logBlockSize}) is not supported`, 0x18);
  const blockSize = 1024 << logBlockSize;
  const revLevel = v.getUint32(0x4c, true);
  const inodeSize = revLevel >= 1 ? v.getUint16(0x58, true) : 128;
  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0)
    throw new DecodeError(`inode size ${inodeSize} is invalid`, 0x58);
  const featureIncompat = revLevel >= 1 ? v.getUint32(0x60, true) : 0;
  const is64bit = (featureIncompat & INCOMPAT_64BIT) !== 0;
  need(bytes, is64bit ? 0x154 : 0x100, 'superblock');
  const descSize = is64bit ? v.getUint16(0xfe, true) : 32;
  if (is64bit && (descSize < 64 || descSize > 1024)) throw new DecodeError(`group descriptor size ${descSize} is invalid`, 0xfe);
  const blocksCount = v.getUint32(0x4, true) + (is64bit ? v.getUint32(0x150, true) * 2 ** 32 : 0);
  const blocksPerGroup = v.getUint32(0x20, true);
  const inodesPerGroup = v.getUint32(0x28, true);
  const firstDataBlock = v.getUint32(0x14, true);
  if (blocksPerGroup === 0 || inodesPerGroup === 0) throw new DecodeError('superblock has zero blocks or inodes per group', 0x20);
  for (const [flag, name] of [
    [INCOMPAT_META_BG, 'meta_bg'],
    [INCOMPAT_ENCRYPT, 'encryption'],
    [INCOMPAT_CASEFOLD, 'casefold'],
  ] as const) {
    if (featureIncompat & flag) throw new DecodeError(`ext4 feature ${name} is not supported`, 0x60);
  }
  return {
    inodesCount: v.getUint32(0x0, true),
    blocksCount,
    freeBlocksCount: v.getUint32(0xc, true) + (is64bit ? v.getUint32(0x158, true) * 2 ** 32 : 0),
    blockSize,
    firstDataBlock,
    blocksPerGroup,
    inodesPerGroup,
    inodeSize,
    featureIncompat,
    is64bit,
    descSize,
    groupCount: Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup),
    hasFiletype: (featureIncompat & INCOMPAT_FILETYPE) !== 0,
    needsRecovery: (featureIncompat & INCOMPAT_RECOVER) !== 0,
  };
}

/** Byte offset of the group descriptor table. */
export function groupTableOffset(sb: Superblock): number {
  return (sb.firstDataBlock + 1) * sb.blockSize;
}

/** The inode table block of one group descriptor. */
export function decodeGroupInodeTable(bytes: Uint8Array, sb: Superblock): number {
  need(bytes, sb.descSize, 'group descriptor');
  const v = viewOf(bytes);
  const lo = v.getUint32(0x8, true);
  const hi = sb.is64bit && sb.descSize >= 64 ? v.getUint32(0x28, true) : 0;
  return lo + hi * 2 ** 32;
}

export interface XattrEntry {
  name: string;
  value: Uint8Array;
}

export interface Inode {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linksCount: number;
  flags: number;
  atime: { sec: number; nsec: number };
  mtime: { sec: number; nsec: number };
  /** The 60 raw bytes of i_block (extent root, block map, fast symlink target or device number). */
  block: Uint8Array;
  fileAcl: number;
  /** xattrs stored inside the inode (after i_extra_isize). */
  inlineXattrs: XattrEntry[];
}

function timeOf(sec: number, extra: number | undefined): { sec: number; nsec: number } {
  if (extra === undefined) return { sec: sec | 0, nsec: 0 };
  // 32-bit signed seconds, extended by two epoch bits; nanoseconds in the upper 30 bits.
  const epoch = extra & 3;
  return { sec: (sec | 0) + epoch * 2 ** 32, nsec: extra >>> 2 };
}

/** Decodes one on-disk inode of `inodeSize` bytes. */
export function decodeInode(bytes: Uint8Array, inodeSize: number): Inode {
  need(bytes, Math.min(inodeSize, 128), 'inode');
  const v = viewOf(bytes);
  const extraIsize = inodeSize > 128 && bytes.length >= 0x82 ? v.getUint16(0x80, true) : 0;
  if (extraIsize && 128 + extraIsize > Math.min(inodeSize, bytes.length))
    throw new DecodeError(`inode extra size ${extraIsize} overruns the inode`, 0x80);
  const has = (offset: number) => extraIsize >= offset - 128 + 4;
  let inlineXattrs: XattrEntry[] = [];
  const xattrStart = 128 + extraIsize;
  if (extraIsize && xattrStart + 4 <= Math.min(inodeSize, bytes.length) && v.getUint32(xattrStart, true) === 0xea020000) {
    const region = bytes.subarray(xattrStart + 4, Math.min(inodeSize, bytes.length));
    inlineXattrs = decodeXattrEntries(region, 0, region, xattrStart + 4);
  }
  return {
    mode: v.getUint16(0x0, true),
    uid: v.getUint16(0x2, true) | (v.getUint16(0x78, true) << 16),
    gid: v.getUint16(0x18, true) | (v.getUint16(0x7a, true) << 16),
    size: v.getUint32(0x4, true) + v.getUint32(0x6c, true) * 2 ** 32,
    linksCount: v.getUint16(0x1a, true),
    flags: v.getUint32(0x20, true),
    atime: timeOf(v.getUint32(0x8, true), has(0x8c) ? v.getUint32(0x8c, true) : undefined),
    mtime: timeOf(v.getUint32(0x10, true), has(0x88) ? v.getUint32(0x88, true) : undefined),
    block: bytes.slice(0x28, 0x28 + 60),
    fileAcl: v.getUint32(0x68, true) + v.getUint16(0x76, true) * 2 ** 32,
    inlineXattrs: inlineXattrs.map((x) => ({ name: x.name, value: x.value.slice() })),
  };
}

const XATTR_PREFIXES: Readonly<Record<number, string>> = {
  1: 'user.',
  2: 'system.posix_acl_access',
  3: 'system.posix_acl_default',
  4: 'trusted.',
  6: 'security.',
  7: 'system.',
  8: 'system.richacl',
};

/**
 * Decodes xattr entries starting at `start` of `entries`; values are read from `values` at
 * e_value_offs (relative to the first entry for in-inode xattrs, to the block start for a block).
 * `base` only shifts DecodeError offsets so they point into the original structure.
 */
export function decodeXattrEntries(entries: Uint8Array, start: number, values: Uint8Array, base = 0): XattrEntry[] {
  const out: XattrEntry[] = [];
  const v = viewOf(entries);
  let at = start;
  for (;;) {
    if (at + 4 > entries.length) break;
    if (v.getUint32(at, true) === 0) break;
    if (at + 16 > entries.length) throw new DecodeError('xattr entry is truncated', base + at);
    const nameLen = v.getUint8(at);
    const index = v.getUint8(at + 1);
    const valueOffs = v.getUint16(at + 2, true);
    const valueInum = v.getUint32(at + 4, true);
    const valueSize = v.getUint32(at + 8, true);
    if (at + 16 + nameLen > entries.length) throw new DecodeError('xattr name is truncated', base + at + 16);
    const suffix = new TextDecoder().decode(entries.subarray(at + 16, at + 16 + nameLen));
    const prefix = XATTR_PREFIXES[index];
    if (valueInum !== 0) throw new DecodeError('xattr values in separate inodes (ea_inode) are not supported', base + at + 4);
    if (valueOffs + valueSize > values.length) throw new DecodeError('xattr value lies outside its block', base + at + 2);
    if (prefix !== undefined) {
      const name = index === 2 || index === 3 || index === 8 ? prefix : prefix + suffix;
      let value: Uint8Array = values.slice(valueOffs, valueOffs + valueSize);
      if (index === 2 || index === 3) value = aclToXattr(value, base + at);
      out.push({ name, value });
    }
    at += (16 + nameLen + 3) & ~3;
  }
  return out;
}

/** Decodes an xattr block (h_magic 0xEA020000, entries from byte 32). */
export function decodeXattrBlock(block: Uint8Array): XattrEntry[] {
  need(block, 32, 'xattr block');
  const magic = viewOf(block).getUint32(0, true);
  if (magic !== 0xea020000) throw new DecodeError(`xattr block has bad magic 0x${magic.toString(16)}`, 0);
  return decodeXattrEntries(block, 32, block);
}

/** ext4 stores POSIX ACLs compactly (version 1, 4- or 8-byte entries); the VFS wants version 2, 8-byte entries. */
export function aclToXattr(disk: Uint8Array, base = 0): Uint8Array {
  if (disk.length < 4) throw new DecodeError('ACL is truncated', base);
  const v = viewOf(disk);
  if (v.getUint32(0, true) !== 1) throw new DecodeError('ACL has an unknown version', base);
  const entries: Array<[number, number, number]> = [];
  let at = 4;
  while (at < disk.length) {
    if (at + 4 > disk.length) throw new DecodeError('ACL entry is truncated', base + at);
    const tag = v.getUint16(at, true);
    const perm = v.getUint16(at + 2, true);
    if (tag === 2 || tag === 8) {
      if (at + 8 > disk.length) throw new DecodeError('ACL entry is truncated', base + at);
      entries.push([tag, perm, v.getUint32(at + 4, true)]);
      at += 8;
    } else {
      entries.push([tag, perm, 0xffffffff]);
      at += 4;
    }
  }
  const out = new Uint8Array(4 + entries.length * 8);
  const w = viewOf(out);
  w.setUint32(0, 2, true);
  entries.forEach(([tag, perm, id], i) => {
    w.setUint16(4 + i * 8, tag, true);
    w.setUint16(6 + i * 8, perm, true);
    w.setUint32(8 + i * 8, id, true);
  });
  return out;
}

/** One run of a file's blocks: `count` logical blocks from `logical` live at `physical`. */
export interface BlockRun {
  logical: number;
  physical: number;
  count: number;
  /** Allocated but never written (reads as zeros). */
  uninit: boolean;
}

export interface ExtentNode {
  depth: number;
  /** Leaf runs (depth 0). */
  runs: BlockRun[];
  /** Child block numbers (depth > 0). */
  children: number[];
}

/** Decodes an extent tree node (the 60-byte root in i_block or a full tree block). */
export function decodeExtentNode(bytes: Uint8Array): ExtentNode {
  need(bytes, 12, 'extent header');
  const v = viewOf(bytes);
  const magic = v.getUint16(0, true);
  if (magic !== 0xf30a) throw new DecodeError(`bad extent header magic 0x${magic.toString(16)}`, 0);
  const entries = v.getUint16(2, true);
  const depth = v.getUint16(6, true);
  if (depth > 5) throw new DecodeError(`extent tree depth ${depth} is implausible`, 6);
  need(bytes, 12 + entries * 12, 'extent node');
  const runs: BlockRun[] = [];
  const children: number[] = [];
  for (let i = 0; i < entries; i++) {
    const at = 12 + i * 12;
    if (depth === 0) {
      const rawLen = v.getUint16(at + 4, true);
      const uninit = rawLen > 32768;
      runs.push({
        logical: v.getUint32(at, true),
        count: uninit ? rawLen - 32768 : rawLen,
        physical: v.getUint16(at + 6, true) * 2 ** 32 + v.getUint32(at + 8, true),
        uninit,
      });
    } else {
      children.push(v.getUint32(at + 4, true) + v.getUint16(at + 8, true) * 2 ** 32);
    }
  }
  return { depth, runs, children };
}

/** Reads little-endian u32 block pointers (legacy block maps). */
export function decodeBlockPointers(bytes: Uint8Array): number[] {
  const v = viewOf(bytes);
  const out: number[] = [];
  for (let at = 0; at + 4 <= bytes.length; at += 4) out.push(v.getUint32(at, true));
  return out;
}

export interface DirEntry {
  inode: number;
  name: string;
  /** ext4 dirent file type (1 file, 2 dir, 3 chr, 4 blk, 5 fifo, 6 sock, 7 symlink; 0 unknown). */
  fileType: number;
}

/**
 * Decodes the entries of one directory block. htree index blocks look like a single empty entry
 * spanning the block and the checksum tail is an entry with inode 0, so reading every block
 * linearly and skipping inode 0 yields exactly the live entries.
 */
export function decodeDirBlock(bytes: Uint8Array, hasFiletype: boolean): DirEntry[] {
  const v = viewOf(bytes);
  const out: DirEntry[] = [];
  let at = 0;
  while (at + 8 <= bytes.length) {
    const inode = v.getUint32(at, true);
    const recLen = v.getUint16(at + 4, true);
    const nameLen = hasFiletype ? v.getUint8(at + 6) : v.getUint16(at + 6, true);
    const fileType = hasFiletype ? v.getUint8(at + 7) : 0;
    if (recLen < 8 || recLen % 4 !== 0 || at + recLen > bytes.length)
      throw new DecodeError(`directory entry has bad length ${recLen}`, at + 4);
    if (inode !== 0) {
      if (8 + nameLen > recLen) throw new DecodeError('directory entry name overruns its record', at + 6);
      const name = new TextDecoder().decode(bytes.subarray(at + 8, at + 8 + nameLen));
      if (name !== '.' && name !== '..') out.push({ inode, name, fileType });
    }
    at += recLen;
  }
  return out;
}

/** Major/minor of a device inode from i_block (old 16-bit or new 32-bit encoding). */
export function decodeDevice(block: Uint8Array): { major: number; minor: number } {
  const v = viewOf(block);
  const old = v.getUint32(0, true);
  if (old !== 0) return { major: (old >>> 8) & 0xff, minor: old & 0xff };
  const n = v.getUint32(4, true);
  return { major: (n & 0xfff00) >>> 8, minor: (n & 0xff) | ((n >>> 12) & 0xfff00) };
}
