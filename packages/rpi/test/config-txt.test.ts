import { describe, expect, it } from 'vitest';
import { bootSequence, readBootVariant, requiredBootFiles } from '../src/index.js';

/** config.txt of Raspberry Pi OS bookworm/trixie arm64 as it ships (comments trimmed). */
const PI_OS_CONFIG = `dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[cm4]
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
dtoverlay=i2c-rtc,ds3231 # a sensor board
`;

describe('what the firmware loads, read from config.txt', () => {
  it.each([
    { model: 'pi4', kernel: 'kernel8.img', initramfs: 'initramfs8', overlays: ['vc4-kms-v3d-pi4', 'i2c-rtc'] },
    { model: 'pi5', kernel: 'kernel_2712.img', initramfs: 'initramfs_2712', overlays: ['vc4-kms-v3d-pi5', 'i2c-rtc'] },
    { model: 'pi3b+', kernel: 'kernel8.img', initramfs: 'initramfs8', overlays: ['vc4-kms-v3d', 'i2c-rtc'] },
  ] as const)('Pi OS config.txt on $model', ({ model, ...expected }) => {
    expect(readBootVariant(PI_OS_CONFIG, model)).toEqual({ ...expected, initramfsOptional: true });
  });

  it.each([
    ['no config.txt', undefined, { kernel: 'kernel8.img', initramfs: null, overlays: [], initramfsOptional: true }],
    [
      'kernel= and an explicit initramfs line',
      'kernel=vmlinuz\ninitramfs initrd.img followkernel\n',
      { kernel: 'vmlinuz', initramfs: 'initrd.img', overlays: [], initramfsOptional: false },
    ],
    [
      'auto_initramfs follows kernel=',
      'kernel=kernel8-rt.img\nauto_initramfs=1\n',
      { kernel: 'kernel8-rt.img', initramfs: 'initramfs8-rt', overlays: [], initramfsOptional: true },
    ],
    [
      '[pi5] lines do not apply to a Pi 4, [none] hides, [all] restores',
      '[pi5]\ndtoverlay=a\n[none]\ndtoverlay=b\n[all]\ndtoverlay=c\n',
      { kernel: 'kernel8.img', initramfs: null, overlays: ['c'], initramfsOptional: true },
    ],
    [
      'run-time filters are assumed true',
      '[gpio4=1]\ndtoverlay=maybe\n',
      { kernel: 'kernel8.img', initramfs: null, overlays: ['maybe'], initramfsOptional: true },
    ],
  ] as const)('%s', (_name, text, expected) => {
    expect(readBootVariant(text, 'pi4')).toEqual(expected);
  });
});

describe('boot sequences per board and boot folder', () => {
  it('a Pi 4 on Pi OS: overlays after the overlay map, the initramfs last, after the kernel', () => {
    const files = bootSequence('pi4', { ...readBootVariant(PI_OS_CONFIG, 'pi4'), vl805: true }).map((r) => r.file);
    expect(files.slice(files.indexOf('overlays/overlay_map.dtb'), files.indexOf('overlays/overlay_map.dtb') + 3)).toEqual([
      'overlays/overlay_map.dtb',
      'overlays/vc4-kms-v3d-pi4.dtbo',
      'overlays/i2c-rtc.dtbo',
    ]);
    expect(files.slice(files.indexOf('pieeprom.sig'), files.indexOf('pieeprom.sig') + 3)).toEqual([
      'pieeprom.sig',
      'vl805.sig',
      'vl805.bin',
    ]);
    expect(files.at(-2)).toBe('kernel8.img');
    expect(files.at(-1)).toBe('initramfs8');
  });

  it('a D0 Pi 5 loads its own DTB; its initramfs is initramfs_2712', () => {
    const sequence = bootSequence('pi5', { d0: true, initramfs: 'initramfs_2712' });
    expect(sequence.map((r) => r.file)).toContain('bcm2712d0-rpi-5-b.dtb');
    expect(sequence.map((r) => r.file)).not.toContain('bcm2712-rpi-5-b.dtb');
    expect(sequence.at(-1)).toMatchObject({ file: 'initramfs_2712', initramfs: true });
    expect(requiredBootFiles('pi5', { d0: true })).toContain('bcm2712d0-rpi-5-b.dtb');
  });

  it('auto_initramfs is optional (loaded when present), an explicit initramfs line is required', () => {
    expect(bootSequence('pi4', readBootVariant('auto_initramfs=1', 'pi4')).at(-1)).toMatchObject({ file: 'initramfs8', optional: true });
    expect(requiredBootFiles('pi4', readBootVariant('initramfs initrd.img', 'pi4'))).toContain('initrd.img');
  });

  it('without a variant the sequence is the bare firmware one, ending with the kernel', () => {
    for (const model of ['pi3b', 'pi3b+', 'pi4', 'pi5'] as const) {
      expect(bootSequence(model).at(-1)?.kernel).toBe(true);
      expect(bootSequence(model).some((r) => r.file.startsWith('initramfs'))).toBe(false);
    }
  });
});
