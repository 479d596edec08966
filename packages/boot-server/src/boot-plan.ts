import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initramfsFor, readBootVariant } from '@iot-tofu/rpi';
import type { InitramfsLookup } from './boot-tracker.js';

/**
 * The initramfs a Pi's firmware loads after its kernel, read from the config.txt it booted with
 * (its own folder's, else the shared base's): the boot tracker calls a boot served only once that
 * file has arrived. Read when a kernel has just been served, once per boot: a small synchronous
 * read of a file the firmware fetched moments ago (so in the page cache).
 */
export function initramfsFromBootFolders(tftpRoot: string, sharedFolder = 'base'): InitramfsLookup {
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  return (serial, model, kernel) => {
    const text = read(join(tftpRoot, serial, 'config.txt')) ?? read(join(tftpRoot, sharedFolder, 'config.txt'));
    const variant = readBootVariant(text, model ?? (kernel === 'kernel_2712.img' ? 'pi5' : 'pi4'));
    if (!variant.initramfs) return null;
    // auto_initramfs follows the kernel the firmware actually loaded.
    return variant.initramfsOptional ? { file: initramfsFor(kernel), optional: true } : { file: variant.initramfs, optional: false };
  };
}
