import type { BootVariant } from './boot-files.js';
import type { PiModel } from './models.js';

/**
 * Reads what the firmware will load from a config.txt: the kernel, the initramfs and the overlays.
 * Pure; follows the firmware's conditional sections ([all], [pi4], [none] …) for one model. Filters
 * that depend on the board at run time (gpio, EDID, serial number, tryboot) are taken as true: the
 * result lists what the Pi may ask for.
 */

/** Model filters and the models they select (Raspberry Pi docs, config.txt "Conditional filters"). */
const MODEL_FILTERS: Readonly<Record<string, readonly PiModel[]>> = {
  pi3: ['pi3b', 'pi3b+'],
  'pi3+': ['pi3b+'],
  pi4: ['pi4'],
  pi5: ['pi5'],
  // Models we do not netboot (Zero, 1, 2, 400, 500, Compute Modules): their sections never apply.
  pi0: [],
  pi0w: [],
  pi02: [],
  pi1: [],
  pi2: [],
  pi400: [],
  pi500: [],
  cm0: [],
  cm3: [],
  cm4: [],
  cm4s: [],
  cm5: [],
};

/** overlay_map.dtb renames of common overlays per SoC (the firmware loads the renamed file). */
const OVERLAY_RENAMES: Readonly<Partial<Record<PiModel, Readonly<Record<string, string>>>>> = {
  pi4: { 'vc4-kms-v3d': 'vc4-kms-v3d-pi4', 'vc4-fkms-v3d': 'vc4-fkms-v3d-pi4' },
  pi5: { 'vc4-kms-v3d': 'vc4-kms-v3d-pi5' },
};

/** `kernel8.img` → `initramfs8`, `kernel_2712.img` → `initramfs_2712` (the auto_initramfs rule). */
export function initramfsFor(kernel: string): string {
  return kernel.replace(/^kernel/, 'initramfs').replace(/\.img$/, '');
}

export function readBootVariant(
  configTxt: string | undefined,
  model: PiModel,
): Required<Pick<BootVariant, 'kernel' | 'initramfs' | 'overlays' | 'initramfsOptional'>> {
  let applies = true;
  let kernel = model === 'pi5' ? 'kernel_2712.img' : 'kernel8.img';
  let autoInitramfs = false;
  let explicitInitramfs: string | null = null;
  const overlays: string[] = [];
  for (const raw of (configTxt ?? '').split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const section = /^\[([^\]]*)\]$/.exec(line);
    if (section) {
      const filter = (section[1] ?? '').trim().toLowerCase();
      if (filter === 'all') applies = true;
      else if (filter === 'none') applies = false;
      else if (filter in MODEL_FILTERS) applies = MODEL_FILTERS[filter]!.includes(model);
      // Run-time filters narrow the current section further; we cannot know them, so keep it.
      continue;
    }
    if (!applies) continue;
    const initramfs = /^initramfs\s+(\S+)/.exec(line);
    if (initramfs) {
      explicitInitramfs = initramfs[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === 'kernel' && value) kernel = value;
    else if (key === 'auto_initramfs') autoInitramfs = value === '1';
    else if (key === 'dtoverlay') {
      const name = value.split(',', 1)[0]!.trim();
      if (name) {
        const file = OVERLAY_RENAMES[model]?.[name] ?? name;
        if (!overlays.includes(file)) overlays.push(file);
      }
    }
  }
  // An explicit initramfs line must be there; auto_initramfs loads the kernel's one only when present.
  const initramfs = explicitInitramfs ?? (autoInitramfs ? initramfsFor(kernel) : null);
  return { kernel, initramfs, overlays, initramfsOptional: explicitInitramfs === null };
}
