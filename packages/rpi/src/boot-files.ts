import type { PiModel } from './models.js';

/**
 * One TFTP request in a model's boot sequence (docs/pi-netboot-protocol.md 3.2). `prefixed` requests go under the
 * serial folder once the prefix probe succeeded; `probe` requests are aborted after the OACK
 * ("Early terminate") to learn the size; `optional` files may be missing (ERROR 1 is normal).
 */
export interface BootRequest {
  readonly file: string;
  readonly prefixed: boolean;
  readonly probe?: boolean;
  readonly optional?: boolean;
  /** The kernel image (its transfer time steers admission). */
  readonly kernel?: boolean;
  /** The initramfs, loaded after the kernel. */
  readonly initramfs?: boolean;
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

/**
 * What a model's firmware loads beyond the fixed files, read from the boot folder (config.txt) or
 * the board: each entry adds requests to the sequence (docs/pi-os-nfs-root.md).
 */
export interface BootVariant {
  /** The kernel the firmware loads (config.txt `kernel=`); default: the model's. */
  readonly kernel?: string;
  /** The initramfs loaded right after the kernel (`auto_initramfs=1`, `initramfs NAME`), or none. */
  readonly initramfs?: string | null;
  /** True for `auto_initramfs=1`: the firmware loads the initramfs only when it exists. */
  readonly initramfsOptional?: boolean;
  /** Overlay files (`overlays/<name>.dtbo`) for config.txt's `dtoverlay=` lines, in order. */
  readonly overlays?: readonly string[];
  /** Pi 4 boards whose bootloader looks for a VL805 USB firmware update (vl805.sig, vl805.bin). */
  readonly vl805?: boolean;
  /** Pi 5 D0-stepping boards load bcm2712d0-rpi-5-b.dtb instead of bcm2712-rpi-5-b.dtb. */
  readonly d0?: boolean;
}

/**
 * The TFTP request sequence of a model's bootloader and firmware, for one boot folder and board.
 * The last request is the last file the firmware loads before starting the kernel: the boot counts
 * as served only once it has arrived.
 */
export function bootSequence(model: PiModel, variant: BootVariant = {}): readonly BootRequest[] {
  const kernel = variant.kernel ?? (model === 'pi5' ? 'kernel_2712.img' : 'kernel8.img');
  const out: BootRequest[] = [];
  for (const request of SEQUENCES[model]) {
    let file = request.file;
    if (file === 'kernel8.img' || file === 'kernel_2712.img') file = kernel;
    if (variant.d0 && file === 'bcm2712-rpi-5-b.dtb') file = 'bcm2712d0-rpi-5-b.dtb';
    out.push(file === request.file ? request : { ...request, file });
    if (variant.vl805 && request.file === 'pieeprom.sig') {
      out.push({ file: 'vl805.sig', prefixed: true, optional: true }, { file: 'vl805.bin', prefixed: true, optional: true });
    }
    if (request.file === 'overlays/overlay_map.dtb') {
      for (const overlay of variant.overlays ?? []) out.push({ file: `overlays/${overlay}.dtbo`, prefixed: true, optional: true });
    }
  }
  if (variant.initramfs)
    out.push({ file: variant.initramfs, prefixed: true, initramfs: true, ...(variant.initramfsOptional ? { optional: true } : {}) });
  return out;
}

/** Files a base must provide for a model to boot (the non-optional ones, once each). */
export function requiredBootFiles(model: PiModel, variant: BootVariant = {}): string[] {
  return [
    ...new Set(
      bootSequence(model, variant)
        .filter((r) => !r.optional)
        .map((r) => r.file),
    ),
  ];
}

/** Every file some supported model needs: what `setup` checks a boot folder against. */
export function allRequiredBootFiles(): string[] {
  return [...new Set((Object.keys(SEQUENCES) as PiModel[]).flatMap((model) => requiredBootFiles(model)))];
}
