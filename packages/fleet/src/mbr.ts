import { DecodeError } from '@iot-tofu/errors';

/** One primary partition of an MBR partition table. */
export interface MbrPartition {
  index: number;
  type: number;
  bootable: boolean;
  /** First sector (512-byte units) and sector count. */
  startLba: number;
  sectors: number;
  /** Byte offset and length inside the image. */
  offset: number;
  length: number;
}

/** FAT variants Raspberry Pi OS images use for the boot partition. */
export const FAT_TYPES: readonly number[] = [0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e];
export const LINUX_TYPE = 0x83;

/**
 * Decodes the four primary entries of a classic MBR (sector 0 of an image). Empty entries are
 * left out. Throws DecodeError for a short sector, a missing 55AA signature or a GPT protective MBR.
 */
export function decodeMbr(sector: Uint8Array): MbrPartition[] {
  if (sector.length < 512) throw new DecodeError(`MBR needs 512 bytes, got ${sector.length}`, sector.length);
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  if (view.getUint16(510, true) !== 0xaa55) throw new DecodeError('no MBR boot signature 55 AA', 510);
  const partitions: MbrPartition[] = [];
  for (let index = 0; index < 4; index++) {
    const at = 446 + index * 16;
    const status = view.getUint8(at);
    if (status !== 0 && status !== 0x80)
      throw new DecodeError(`partition ${index + 1} has an invalid status byte 0x${status.toString(16)}`, at);
    const type = view.getUint8(at + 4);
    const startLba = view.getUint32(at + 8, true);
    const sectors = view.getUint32(at + 12, true);
    if (type === 0 || sectors === 0) continue;
    if (type === 0xee) throw new DecodeError('GPT protective MBR: GPT images are not supported', at + 4);
    partitions.push({
      index: index + 1,
      type,
      bootable: status === 0x80,
      startLba,
      sectors,
      offset: startLba * 512,
      length: sectors * 512,
    });
  }
  return partitions;
}

/** The Raspberry Pi OS layout: the first FAT partition is boot, the first Linux one is root. */
export function findPiPartitions(partitions: readonly MbrPartition[]): { boot: MbrPartition; root: MbrPartition } | undefined {
  const boot = partitions.find((p) => FAT_TYPES.includes(p.type));
  const root = partitions.find((p) => p.type === LINUX_TYPE);
  return boot && root ? { boot, root } : undefined;
}
