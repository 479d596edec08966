import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FleetCore } from './core.js';
import { removeTree } from './fs-util.js';
import { settleSetups } from './setup.js';

/**
 * Repair after a kill: every verb records an intent before its first change and clears it after
 * its last; the next verb holding the same lock settles what is left (intents.ts).
 */

/**
 * Repairs what a killed verb left for this Pi (the caller holds its lock, so no live verb owns
 * any of it): an add not yet in the registry is undone (its folders and export lines), a remove
 * is finished, and temp and trash trees of the serial are swept.
 */
export async function settlePi(core: FleetCore, short: string): Promise<void> {
  const intent = await core.intents.read(`pi-${short}`);
  const tftpDir = join(core.tftpRoot, short);
  const nfsDir = join(core.nfsRoot, short);
  const entry = (await core.store.read()).pis[short];
  if (intent?.op === 'add' && !entry) {
    core.logger.warn({ serial: short }, 'undoing an add that was interrupted');
    await core.unexport([nfsDir, tftpDir]);
    for (const dir of [tftpDir, nfsDir]) await removeTree(dir);
  } else if (intent?.op === 'remove') {
    core.logger.warn({ serial: short }, 'finishing a remove that was interrupted');
    await core.unexport(entry?.exports ?? [nfsDir, tftpDir]);
    for (const dir of [tftpDir, nfsDir]) await removeTree(dir);
    if (entry) {
      await core.store.mutate((data) => {
        const had = !!data.pis[short];
        delete data.pis[short];
        return { write: had, value: undefined };
      });
    }
  }
  for (const root of [core.tftpRoot, core.nfsRoot]) {
    for (const name of await readdir(root).catch(() => [] as string[])) {
      if (name.startsWith(`.${short}.tmp-`) || name.startsWith(`.${short}.trash-`)) await removeTree(join(root, name));
    }
  }
  if (intent) await core.intents.clear(intent);
}

/**
 * Repairs every Pi and setup a killed verb left half-done, skipping those another live process
 * is working on (their lock is held). Run by `open` as root: any verb, and `boot-server start`.
 */
export async function settleAll(core: FleetCore): Promise<void> {
  for (const intent of await core.intents.pending()) {
    const release = await (intent.op === 'setup' ? core.lockSetup() : core.lockPi(intent.serial)).catch(() => undefined);
    if (!release) continue;
    try {
      if (intent.op === 'setup') await settleSetups(core);
      else await settlePi(core, intent.serial);
    } finally {
      await release();
    }
  }
}

/** Deletes `.<serial>.trash-*` leftovers of interrupted removes (all serials when none given). */
export async function sweepTrash(core: FleetCore, serial?: string): Promise<void> {
  for (const root of [core.tftpRoot, core.nfsRoot]) {
    for (const name of await readdir(root).catch(() => [] as string[])) {
      const match = /^\.([0-9a-f]{8})\.trash-[0-9a-f]+$/.exec(name);
      if (match && (serial === undefined || match[1] === serial)) await removeTree(join(root, name));
    }
  }
}
