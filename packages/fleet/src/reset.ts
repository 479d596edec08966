import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isSerialFolderName } from '@iot-tofu/rpi';
import type { FleetCore } from './core.js';
import { removeTree } from './fs-util.js';
import { removePi } from './pi-remove.js';
import { CURRENT_LAYOUT, emptyRegistry, keyedTable } from './registry.js';
import { sweepTrash } from './settle.js';

/**
 * Removes every Pi, every base, the boot base and our exports file: back to before setup. The
 * CLI asks for confirmation first.
 */
export async function resetFleet(core: FleetCore): Promise<{ removed: string[]; bases: string[] }> {
  core.requireRoot('reset');
  await core.reload();
  const serials = new Set(Object.keys(core.data.pis));
  for (const name of await readdir(core.tftpRoot).catch(() => [] as string[])) if (isSerialFolderName(name)) serials.add(name);
  const removed: string[] = [];
  for (const serial of [...serials].sort()) {
    await removePi(core, serial);
    removed.push(serial);
  }
  await sweepTrash(core);
  const bases = Object.keys(core.data.bases).sort();
  for (const name of bases) {
    await removeTree(join(core.nfsRoot, 'bases', name));
    await rm(join(core.stateDir, 'bases', name), { recursive: true, force: true });
  }
  await removeTree(join(core.tftpRoot, 'base'));
  await rm(join(core.tftpRoot, 'bootcode.bin'), { force: true });
  await core.exports.removeFile();
  await core.store.mutate((data) => {
    data.bases = keyedTable();
    data.defaultBase = null;
    data.pis = keyedTable();
    data.layout = CURRENT_LAYOUT;
    return { write: true, value: undefined };
  });
  core.data = emptyRegistry();
  core.facts.rebuildIndex();
  return { removed, bases };
}
