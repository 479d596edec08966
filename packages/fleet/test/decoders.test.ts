import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DecodeError } from '@iot-tofu/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs } from '@iot-tofu/test-kit';
import {
  aclToXattr,
  decodeDevice,
  decodeDirBlock,
  decodeExtentNode,
  decodeInode,
  decodeSuperblock,
  decodeXattrBlock,
} from '../src/ext4.js';
import { decodeMbr, findPiPartitions, parseMountinfo } from '../src/index.js';
import { IMAGE_LAYOUT, makePiImage, tempDir } from './helpers.js';

/** Every strict prefix of a valid structure must throw DecodeError (never RangeError). */
function truncationSweep(bytes: Uint8Array, decode: (b: Uint8Array) => unknown, minValid: number): void {
  for (let n = 0; n < minValid; n++) {
    let error: unknown;
    try {
      decode(bytes.subarray(0, n));
    } catch (e) {
      error = e;
    }
    expect(error, `prefix of ${n} bytes`).toBeInstanceOf(DecodeError);
  }
}

describe('decodeMbr', () => {
  const sector = new Uint8Array(512);
  const view = new DataView(sector.buffer);
  const entry = (i: number, status: number, type: number, start: number, count: number) => {
    const at = 446 + i * 16;
    view.setUint8(at, status);
    view.setUint8(at + 4, type);
    view.setUint32(at + 8, start, true);
    view.setUint32(at + 12, count, true);
  };
  entry(0, 0x80, 0x0c, 8192, 1048576);
  entry(1, 0, 0x83, 1056768, 4194304);
  view.setUint16(510, 0xaa55, true);

  it('decodes the Raspberry Pi OS layout', () => {
    const parts = decodeMbr(sector);
    expect(parts).toEqual([
      { index: 1, type: 0x0c, bootable: true, startLba: 8192, sectors: 1048576, offset: 8192 * 512, length: 1048576 * 512 },
      { index: 2, type: 0x83, bootable: false, startLba: 1056768, sectors: 4194304, offset: 1056768 * 512, length: 4194304 * 512 },
    ]);
    expect(findPiPartitions(parts)?.root.index).toBe(2);
    expect(findPiPartitions(parts.slice(0, 1))).toBeUndefined();
  });

  it('rejects truncation, a missing signature, bad status and GPT', () => {
    truncationSweep(sector, decodeMbr, 512);
    const noSig = sector.slice();
    noSig[510] = 0;
    expect(() => decodeMbr(noSig)).toThrow(/55 AA/);
    const badStatus = sector.slice();
    badStatus[446] = 0x12;
    expect(() => decodeMbr(badStatus)).toThrow(DecodeError);
    const gpt = sector.slice();
    gpt[446 + 4] = 0xee;
    expect(() => decodeMbr(gpt)).toThrow(/GPT/);
  });
});

describe(
  'ext4 decoders over a real mkfs.ext4 image',
  needs('root', 'sfdisk', 'mkfs.ext4', 'e2fsck', 'mkfs.vfat', 'mcopy', 'xattr', 'debugfs'),
  () => {
    let dir: string;
    let all: Buffer;
    let fs: Buffer;
    let sb: ReturnType<typeof decodeSuperblock>;
    beforeAll(() => {
      dir = tempDir('ext4dec');
      all = readFileSync(makePiImage(dir).image);
      fs = all.subarray(IMAGE_LAYOUT.rootStart * 512);
      sb = decodeSuperblock(fs.subarray(1024, 2048));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('decodeMbr matches what sfdisk wrote', () => {
      const parts = decodeMbr(all.subarray(0, 512));
      expect(parts.map((p) => [p.type, p.startLba, p.sectors])).toEqual([
        [0x0c, IMAGE_LAYOUT.bootStart, IMAGE_LAYOUT.bootSectors],
        [0x83, IMAGE_LAYOUT.rootStart, IMAGE_LAYOUT.rootSectors],
      ]);
    });

    it('decodeSuperblock agrees with dumpe2fs/debugfs', () => {
      const ext = join(dir, 'root.ext4');
      const stats = execFileSync('debugfs', ['-R', 'stats', ext], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(stats)?.[1]);
      expect(sb.blockSize).toBe(field('Block size'));
      expect(sb.inodesCount).toBe(field('Inode count'));
      expect(sb.blocksCount).toBe(field('Block count'));
      expect(sb.freeBlocksCount).toBe(field('Free blocks'));
      expect(sb.inodeSize).toBe(field('Inode size'));
      expect(sb.inodesPerGroup).toBe(field('Inodes per group'));
      truncationSweep(fs.subarray(1024, 2048), decodeSuperblock, sb.is64bit ? 0x154 : 0x100);
      expect(() => decodeSuperblock(new Uint8Array(1024))).toThrow(/magic/);
    });

    it('decodeInode, decodeExtentNode and decodeDirBlock read the root directory', () => {
      // Group 0's inode table: read its location from the first group descriptor.
      const gd = fs.subarray((sb.firstDataBlock + 1) * sb.blockSize);
      const table = new DataView(gd.buffer, gd.byteOffset).getUint32(8, true);
      const rootInodeBytes = fs.subarray(table * sb.blockSize + sb.inodeSize, table * sb.blockSize + 2 * sb.inodeSize);
      const root = decodeInode(rootInodeBytes, sb.inodeSize);
      expect(root.mode & 0o170000).toBe(0o040000);
      truncationSweep(rootInodeBytes, (b) => decodeInode(b, sb.inodeSize), 128);
      const node = decodeExtentNode(root.block);
      expect(node.depth).toBe(0);
      const run = node.runs[0]!;
      truncationSweep(root.block, decodeExtentNode, 12 + node.runs.length * 12);
      const block = fs.subarray(run.physical * sb.blockSize, (run.physical + 1) * sb.blockSize);
      const names = decodeDirBlock(block, sb.hasFiletype)
        .map((e) => e.name)
        .sort();
      expect(names).toEqual(['boot', 'dev', 'etc', 'home', 'lost+found', 'usr', 'var']);
      expect(() => decodeDirBlock(Uint8Array.from([1, 0, 0, 0, 4, 0, 1, 2]), true)).toThrow(DecodeError);
    });

    it('decodeXattrBlock and ACL conversion', () => {
      const block = new Uint8Array(1024);
      const v = new DataView(block.buffer);
      v.setUint32(0, 0xea020000, true);
      // one entry: user.k = "val"
      v.setUint8(32, 1);
      v.setUint8(33, 1);
      v.setUint16(34, 1000, true);
      v.setUint32(40, 3, true);
      block.set(new TextEncoder().encode('k'), 48);
      block.set(new TextEncoder().encode('val'), 1000);
      expect(decodeXattrBlock(block)).toEqual([{ name: 'user.k', value: new TextEncoder().encode('val') }]);
      truncationSweep(block, decodeXattrBlock, 32);
      const outside = block.slice();
      new DataView(outside.buffer).setUint16(34, 1023, true);
      expect(() => decodeXattrBlock(outside)).toThrow(/outside/);
      // ext4 ACL: version 1, USER_OBJ rw-, USER 1000 r--, GROUP_OBJ r--, MASK r--, OTHER ---
      const disk = Uint8Array.from([1, 0, 0, 0, 1, 0, 6, 0, 2, 0, 4, 0, 0xe8, 3, 0, 0, 4, 0, 4, 0, 0x10, 0, 4, 0, 0x20, 0, 0, 0]);
      const vfs = aclToXattr(disk);
      expect(Buffer.from(vfs).toString('hex')).toBe(
        '02000000' + '01000600ffffffff' + '02000400e8030000' + '04000400ffffffff' + '10000400ffffffff' + '20000000ffffffff',
      );
      truncationSweep(disk, aclToXattr, 4);
    });

    it('decodeDevice reads old and new encodings', () => {
      expect(decodeDevice(Uint8Array.from([3, 1, 0, 0, 0, 0, 0, 0]))).toEqual({ major: 1, minor: 3 });
      const n = new Uint8Array(8);
      new DataView(n.buffer).setUint32(4, (259 << 8) | 5 | (0x123 << 20), true);
      expect(decodeDevice(n)).toEqual({ major: 259, minor: 5 | (0x123 << 8) });
    });
  },
);

describe('parseMountinfo', () => {
  it('reads mount points with octal escapes', () => {
    const text =
      '22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n99 22 0:5 / /nfs/9f55bbfd/dev rw - devtmpfs udev rw\n100 22 0:6 / /mnt/with\\040space rw - tmpfs t rw\n';
    expect(parseMountinfo(text)).toEqual(['/', '/nfs/9f55bbfd/dev', '/mnt/with space']);
  });
});
