/** Raspberry Pi models that boot over the network, named as operators and the API see them. */
export type PiModel = 'pi3b' | 'pi3b+' | 'pi4' | 'pi5';

export const PI_MODELS: readonly PiModel[] = ['pi3b', 'pi3b+', 'pi4', 'pi5'];

export interface ModelInfo {
  readonly model: PiModel;
  readonly label: string;
  /** What the first bootloader stage asks for over TFTP: the Pi 3 ROM fetches root bootcode.bin with 512-byte blocks. */
  readonly stage1: 'rom' | 'eeprom';
  /** Block size the bootloader asks for (0 = no options at all, plain RFC 1350). */
  readonly blksize: number;
  /** The file that proves a serial folder is bootable (the prefix probe). */
  readonly prefixProbe: string;
  readonly kernel: string;
  readonly dtb: string;
}

export const MODEL_INFO: Readonly<Record<PiModel, ModelInfo>> = {
  pi3b: {
    model: 'pi3b',
    label: 'Raspberry Pi 3 Model B',
    stage1: 'rom',
    blksize: 512,
    prefixProbe: 'start.elf',
    kernel: 'kernel8.img',
    dtb: 'bcm2710-rpi-3-b.dtb',
  },
  'pi3b+': {
    model: 'pi3b+',
    label: 'Raspberry Pi 3 Model B+',
    stage1: 'rom',
    blksize: 512,
    prefixProbe: 'start.elf',
    kernel: 'kernel8.img',
    dtb: 'bcm2710-rpi-3-b-plus.dtb',
  },
  pi4: {
    model: 'pi4',
    label: 'Raspberry Pi 4 Model B',
    stage1: 'eeprom',
    blksize: 1468,
    prefixProbe: 'start4.elf',
    kernel: 'kernel8.img',
    dtb: 'bcm2711-rpi-4-b.dtb',
  },
  pi5: {
    model: 'pi5',
    label: 'Raspberry Pi 5',
    stage1: 'eeprom',
    blksize: 1468,
    prefixProbe: 'config.txt',
    kernel: 'kernel_2712.img',
    dtb: 'bcm2712-rpi-5-b.dtb',
  },
};

export function isPiModel(value: string): value is PiModel {
  return (PI_MODELS as readonly string[]).includes(value);
}
