import { rename } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseSerial } from '@iot-tofu/rpi';
import type { FleetCore } from './core.js';
import { FleetError } from './errors.js';
import { exists, mountsUnder, removeTree } from './fs-util.js';
import type { Intent } from './intents.js';
import { settlePi, sweepTrash } from './settle.js';
import type { RemoveResult } from './types.js';

/**
 * Unexports, then deletes the Pi's folders (never following symlinks or crossing mounts) and its
 * registry entry. Idempotent: removing an unknown serial succeeds with `removed: false`.
 */
export async function removePi(core: FleetCore, serialInput: string): Promise<RemoveResult> {
  const short = parseSerial(serialInput).short;
  core.requireRoot('remove');
  const release = await core.lockPi(short);
  try {
    await settlePi(core, short);
    await core.reload();
    const tftpDir = join(core.tftpRoot, short);
    const nfsDir = join(core.nfsRoot, short);
    const entry = core.data.pis[short];
    const present = !!entry || (await exists(tftpDir)) || (await exists(nfsDir));
    for (const dir of [tftpDir, nfsDir]) {
      const mounts = await mountsUnder(dir);
      if (mounts.length)
        throw new FleetError('PI_MOUNTED', `refusing to remove ${short}: ${mounts.join(', ')} is mounted inside ${dir}; unmount it first`);
    }
    const undo: Array<() => Promise<void>> = [];
    const trash: string[] = [];
    let unexported = false;
    const intent: Intent = { op: 'remove', serial: short, tag: randomBytes(4).toString('hex') };
    if (present) await core.intents.record(intent);
    try {
      await core.beforeStep('remove:exports');
      const exportPaths = entry?.exports ?? [nfsDir, tftpDir];
      const previous = (await core.exports.read()).filter((e) => exportPaths.includes(e.path));
      unexported = await core.unexport(exportPaths);
      if (previous.length)
        undo.push(() =>
          core.exports.update((entries) => [...entries.filter((e) => !exportPaths.includes(e.path)), ...previous]).then(() => undefined),
        );
      // Move out of the way first (atomic), so a half-deleted tree is never served as a Pi's root.
      const tag = randomBytes(4).toString('hex');
      for (const dir of [tftpDir, nfsDir]) {
        if (await exists(dir)) {
          const target = join(dir, '..', `.${short}.trash-${tag}`);
          await rename(dir, target);
          trash.push(target);
          undo.push(() => rename(target, dir));
        }
      }
      await core.beforeStep('remove:registry');
      if (entry) {
        await core.store.mutate((data) => {
          const had = !!data.pis[short];
          delete data.pis[short];
          return { write: had, value: undefined };
        });
        delete core.data.pis[short];
        core.facts.rebuildIndex();
      }
    } catch (error) {
      let undone = true;
      for (const step of undo.reverse()) {
        await step().catch((e: unknown) => {
          undone = false;
          core.logger.error({ err: e }, 'remove rollback step failed');
        });
      }
      if (undone) await core.intents.clear(intent);
      throw error;
    }
    // Committed: the Pi is gone from the registry and the exports. Deleting the moved-away trees
    // may still fail (I/O); a later remove or reset sweeps what is left.
    core.facts.forgetTimeline(short);
    await core.beforeStep('remove:delete');
    for (const dir of trash) await removeTree(dir);
    await sweepTrash(core, short);
    await core.intents.clear(intent);
    core.logger.info({ serial: short, unexported }, 'pi removed');
    return { serial: short, removed: present || unexported };
  } finally {
    await release();
  }
}
