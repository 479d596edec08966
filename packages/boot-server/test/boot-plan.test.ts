import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initramfsFromBootFolders } from '../src/boot-plan.js';

describe('the initramfs a Pi loads, from the config.txt of its boot folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'iot-tofu-boot-plan-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'aaaaaaaa'));
  mkdirSync(join(root, 'bbbbbbbb'));
  mkdirSync(join(root, 'base'));
  writeFileSync(join(root, 'aaaaaaaa', 'config.txt'), 'arm_64bit=1\nauto_initramfs=1\n');
  writeFileSync(join(root, 'bbbbbbbb', 'config.txt'), '[pi5]\ninitramfs initrd-5.img followkernel\n');
  writeFileSync(join(root, 'base', 'config.txt'), 'arm_64bit=1\n');
  const lookup = initramfsFromBootFolders(root);

  it.each([
    ['auto_initramfs follows the kernel served (Pi 4)', 'aaaaaaaa', 'pi4', 'kernel8.img', { file: 'initramfs8', optional: true }],
    [
      'auto_initramfs follows the kernel served (Pi 5, model unknown)',
      'aaaaaaaa',
      undefined,
      'kernel_2712.img',
      { file: 'initramfs_2712', optional: true },
    ],
    ['an explicit line in a [pi5] section, for a Pi 5', 'bbbbbbbb', 'pi5', 'kernel_2712.img', { file: 'initrd-5.img', optional: false }],
    ['the same section does not apply to a Pi 4', 'bbbbbbbb', 'pi4', 'kernel8.img', null],
    ['no own config.txt: the shared base decides (no initramfs there)', 'cccccccc', 'pi4', 'kernel8.img', null],
  ] as const)('%s', (_name, serial, model, kernel, expected) => {
    expect(lookup(serial, model, kernel)).toEqual(expected);
  });
});
