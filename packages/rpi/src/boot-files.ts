import type { PiModel } from './models.js';

/**
 * One TFTP request in a model's boot sequence (PROTOCOL.md 3.2). `prefixed` requests go under the
 * serial folder once the prefix probe succeeded; `probe` requests are aborted after the OACK
 * ("Early terminate") to learn the size; `optional` files may be missing (ERROR 1 is normal).
 */
export interface BootRequest {
  readonly file: string;
  readonly prefixed: boolean;
  readonly probe?: boolean;
  readonly optional?: boolean;
  /** The file the kernel boot depends on: the boot counts as done when this one arrives. */
  readonly kernel?: boolean;
}

const pi3: (dtb: string) => BootRequest[] = (dtb) => [
  { file: 'bootcode.bin', prefixed: false },
  { file: 'bootsig.bin', prefixed: false, optional: true },
  { file: 'start.elf', prefixed: true, probe: true },
  { file: 'autoboot.txt', prefixed: true, optional: true },
  { file: 'config.txt', prefixed: true },
  { file: 'recovery.elf', prefixed: true, optional: true },
  { file: 'start.elf', prefixed: true },
  { file: 'fixup.dat', prefixed: true },
  { file: 'config.txt', prefixed: true },
  { file: 'dt-blob.bin', prefixed: true, optional: true },
  { file: 'bootcfg.txt', prefixed: true, optional: true },
  { file: 'cmdline.txt', prefixed: true },
  { file: 'kernel8.img', prefixed: true, probe: true },
  { file: 'armstub8.bin', prefixed: true, optional: true },
  { file: dtb, prefixed: true },
  { file: 'overlays/overlay_map.dtb', prefixed: true, optional: true },
  { file: 'kernel8.img', prefixed: true, kernel: true },
];

const SEQUENCES: Readonly<Record<PiModel, readonly BootRequest[]>> = {
  pi3b: pi3('bcm2710-rpi-3-b.dtb'),
  'pi3b+': pi3('bcm2710-rpi-3-b-plus.dtb'),
  pi4: [
    { file: 'start4.elf', prefixed: true, probe: true },
    { file: 'config.txt', prefixed: true },
    { file: 'pieeprom.sig', prefixed: true, optional: true },
    { file: 'recover4.elf', prefixed: true, optional: true },
    { file: 'recovery.elf', prefixed: true, optional: true },
    { file: 'start4.elf', prefixed: true },
    { file: 'fixup4.dat', prefixed: true },
    { file: 'config.txt', prefixed: true },
    { file: 'config.txt', prefixed: true },
    { file: 'dt-blob.bin', prefixed: true, optional: true },
    { file: 'bcm2711-rpi-4-b.dtb', prefixed: true },
    { file: 'overlays/overlay_map.dtb', prefixed: true, optional: true },
    { file: 'cmdline.txt', prefixed: true },
    { file: 'kernel8.img', prefixed: true, probe: true },
    { file: 'armstub8-gic.bin', prefixed: true, optional: true },
    { file: 'kernel8.img', prefixed: true, kernel: true },
  ],
  pi5: [
    { file: 'config.txt', prefixed: true },
    { file: 'pieeprom.sig', prefixed: true, optional: true },
    { file: 'bcm2712-rpi-5-b.dtb', prefixed: true },
    { file: 'overlays/overlay_map.dtb', prefixed: true, optional: true },
    { file: 'cmdline.txt', prefixed: true },
    { file: 'armstub8-2712.bin', prefixed: true, optional: true },
    { file: 'kernel_2712.img', prefixed: true, probe: true },
    { file: 'kernel_2712.img', prefixed: true, kernel: true },
  ],
};

/** The typical TFTP request sequence of a model's bootloader and firmware. */
export function bootSequence(model: PiModel): readonly BootRequest[] {
  return SEQUENCES[model];
}

/** Files a base must provide for a model to boot (the non-optional ones, once each). */
export function requiredBootFiles(model: PiModel): string[] {
  return [...new Set(SEQUENCES[model].filter((r) => !r.optional).map((r) => r.file))];
}

/** Every file some supported model needs: what `setup` checks a boot folder against. */
export function allRequiredBootFiles(): string[] {
  return [...new Set((Object.keys(SEQUENCES) as PiModel[]).flatMap(requiredBootFiles))];
}
