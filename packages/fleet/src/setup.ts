import { chmod, copyFile, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { copyTree } from './copy.js';
import type { FleetCore } from './core.js';
import { FleetError } from './errors.js';
import { exists, removeTree, treeSize } from './fs-util.js';
import { importSource } from './import.js';
import type { Intent } from './intents.js';
import type { StoredBase } from './registry.js';
import type { BaseJson, FleetStep, ProgressOptions, SetupRequest, SetupResult, SetupSource } from './types.js';

/**
 * Bases: setup imports one (image, tarballs or folders) into temp trees renamed into place,
 * remove-base deletes one no Pi uses, settleSetups repairs what a killed setup left. All under the
 * setup lock.
 */

/** A base name: a folder under <nfsRoot>/bases (the API's schema uses the same pattern). */
export const BASE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const BASE_NAME = BASE_NAME_PATTERN;

function describeSource(source: SetupSource): string {
  if (source.kind === 'image') return `image ${source.image}`;
  if (source.kind === 'tarballs') return `tarballs ${source.boot} ${source.root}`;
  return `dirs ${source.boot} ${source.root}`;
}

/**
 * Imports a base: its root to `<nfsRoot>/bases/<name>/`, its boot files to the state dir and,
 * for the default base, to `<tftpRoot>/base/` (+ bootcode.bin at the TFTP root for Pi 3).
 * Built in temp siblings and renamed into place; a failure leaves nothing behind.
 */
export async function setupBase(core: FleetCore, request: SetupRequest, options: ProgressOptions = {}): Promise<SetupResult> {
  const started = Date.now();
  core.requireRoot('setup');
  const name = request.base;
  if (!BASE_NAME.test(name) || name === 'base')
    throw new FleetError('INVALID_REQUEST', `Invalid base name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-'`);
  const tag = randomBytes(4).toString('hex');
  const basesDir = join(core.nfsRoot, 'bases');
  const bootStore = join(core.stateDir, 'bases', name);
  await mkdir(basesDir, { recursive: true });
  await mkdir(join(core.stateDir, 'bases'), { recursive: true });
  await mkdir(core.tftpRoot, { recursive: true });
  // One setup at a time: they share <tftpRoot>/base and the temp names below.
  const release = await core.lockSetup();
  const intent: Intent = { op: 'setup', base: name, tag, makeDefault: false };
  try {
    await settleSetups(core);
    await core.reload();
    if (core.data.bases[name] || (await exists(join(core.nfsRoot, 'bases', name)))) {
      throw new FleetError(
        'BASE_EXISTS',
        `base ${name} already exists (${join(core.nfsRoot, 'bases', name)}); remove it with pxetools remove-base ${name} or pick another name`,
      );
    }
    intent.makeDefault = request.makeDefault ?? !core.data.defaultBase;
    await core.intents.record(intent);
  } catch (error) {
    await release();
    throw error;
  }
  const tmpRoot = join(basesDir, `.${name}.tmp-${tag}`);
  const tmpBoot = join(core.stateDir, 'bases', `.${name}.tmp-${tag}`);
  const tmpTftpBase = join(core.tftpRoot, `.base.tmp-${tag}`);
  const scratch = join(core.stateDir, `.scratch-${tag}`);
  const undo: Array<() => Promise<void>> = [];
  try {
    await mkdir(scratch, { recursive: true });
    const step = async (s: FleetStep) => core.beforeStep(s);
    await importSource(request.source, {
      bootDest: tmpBoot,
      rootDest: tmpRoot,
      scratch,
      runner: core.runner,
      step,
      onProgress: options.onProgress,
    });
    const layout: BaseJson['layout'] = (await exists(join(tmpRoot, 'boot', 'firmware'))) ? 'bookworm' : 'legacy';
    if (!(await exists(join(tmpRoot, 'etc'))))
      throw new FleetError('BASE_INVALID', `the root filesystem of ${name} has no /etc; is it really a Raspberry Pi OS root?`);
    const size = await treeSize(tmpRoot);
    const makeDefault = intent.makeDefault;
    if (makeDefault) {
      await copyTree(core.runner, tmpBoot, tmpTftpBase);
    }
    await core.beforeStep('setup:commit');
    await rename(tmpRoot, join(basesDir, name));
    undo.push(() => rename(join(basesDir, name), tmpRoot));
    await rename(tmpBoot, bootStore);
    undo.push(() => rename(bootStore, tmpBoot));
    let oldTftpBase: string | undefined;
    if (makeDefault) {
      if (await exists(join(core.tftpRoot, 'base'))) {
        oldTftpBase = join(core.tftpRoot, `.base.old-${tag}`);
        await rename(join(core.tftpRoot, 'base'), oldTftpBase);
        const old = oldTftpBase;
        undo.push(() => rename(old, join(core.tftpRoot, 'base')));
      }
      await rename(tmpTftpBase, join(core.tftpRoot, 'base'));
      undo.push(() => rename(join(core.tftpRoot, 'base'), tmpTftpBase));
      if (await exists(join(bootStore, 'bootcode.bin'))) {
        // Pi 3 ROMs ask for /bootcode.bin at the TFTP root before any serial folder (docs/pxetools-compat.md E13).
        const tmpCode = join(core.tftpRoot, `.bootcode.bin.tmp-${tag}`);
        await copyFile(join(bootStore, 'bootcode.bin'), tmpCode);
        await chmod(tmpCode, 0o644);
        await rename(tmpCode, join(core.tftpRoot, 'bootcode.bin'));
      }
    }
    const base: StoredBase = {
      name,
      rootDir: join(basesDir, name),
      bootDir: bootStore,
      layout,
      source: describeSource(request.source),
      importedAt: core.clock().toISOString(),
      bytes: size.bytes,
      files: size.files,
    };
    await core.beforeStep('setup:registry');
    await core.store.mutate((data) => {
      data.bases[name] = base;
      if (makeDefault) data.defaultBase = name;
      return { write: true, value: undefined };
    });
    core.data.bases[name] = base;
    if (makeDefault) core.data.defaultBase = name;
    if (oldTftpBase) await rm(oldTftpBase, { recursive: true, force: true });
    await core.intents.clear(intent);
    core.logger.info({ base: name, layout, bytes: size.bytes }, 'base imported');
    return { base: { ...base, default: makeDefault }, ms: Date.now() - started };
  } catch (error) {
    let undone = true;
    for (const step of undo.reverse()) {
      await step().catch((e: unknown) => {
        undone = false;
        core.logger.error({ err: e }, 'setup rollback step failed');
      });
    }
    if (undone) await core.intents.clear(intent);
    throw error;
  } finally {
    await Promise.all([tmpRoot, tmpBoot, tmpTftpBase, scratch].map((p) => removeTree(p)));
    await release();
  }
}

/**
 * Repairs what killed setups left (the caller holds the setup lock): a base that did not reach
 * the registry is undone (its folders deleted, the previous `<tftpRoot>/base` put back); one
 * that did is kept. Then temp trees are swept.
 */
export async function settleSetups(core: FleetCore): Promise<void> {
  for (const intent of await core.intents.pending()) {
    if (intent.op !== 'setup') continue;
    const registry = await core.store.read();
    if (!registry.bases[intent.base]) {
      core.logger.warn({ base: intent.base }, 'undoing a setup that was interrupted');
      await removeTree(join(core.nfsRoot, 'bases', intent.base));
      await removeTree(join(core.stateDir, 'bases', intent.base));
      const previous = join(core.tftpRoot, `.base.old-${intent.tag}`);
      if (intent.makeDefault && (await exists(previous))) {
        await removeTree(join(core.tftpRoot, 'base'));
        await rename(previous, join(core.tftpRoot, 'base'));
      } else if (intent.makeDefault && !registry.defaultBase) {
        await removeTree(join(core.tftpRoot, 'base'));
        await rm(join(core.tftpRoot, 'bootcode.bin'), { force: true });
      }
    }
    await core.intents.clear(intent);
  }
  await sweepSetupLeftovers(core);
}

/**
 * What a killed setup leaves: temp trees (deleted) and, if it died between moving the old
 * `<tftpRoot>/base` aside and putting the new one in, the old one (moved back). Runs under the
 * setup lock, so no live setup owns these names.
 */
export async function sweepSetupLeftovers(core: FleetCore): Promise<void> {
  const leftovers: string[] = [];
  for (const dir of [join(core.nfsRoot, 'bases'), join(core.stateDir, 'bases')]) {
    for (const name of await readdir(dir).catch(() => [] as string[]))
      if (/^\..+\.tmp-[0-9a-f]+$/.test(name)) leftovers.push(join(dir, name));
  }
  for (const name of await readdir(core.stateDir).catch(() => [] as string[]))
    if (/^\.scratch-[0-9a-f]+$/.test(name)) leftovers.push(join(core.stateDir, name));
  const tftpNames = await readdir(core.tftpRoot).catch(() => [] as string[]);
  for (const name of tftpNames) if (/^\.(base|bootcode\.bin)\.tmp-[0-9a-f]+$/.test(name)) leftovers.push(join(core.tftpRoot, name));
  const old = tftpNames.filter((n) => /^\.base\.old-[0-9a-f]+$/.test(n));
  if (old[0] && !tftpNames.includes('base')) await rename(join(core.tftpRoot, old[0]), join(core.tftpRoot, 'base'));
  else leftovers.push(...old.map((n) => join(core.tftpRoot, n)));
  for (const path of leftovers) {
    core.logger.warn({ path }, 'removing what an interrupted setup left behind');
    await removeTree(path);
  }
}

/**
 * Deletes a base (its root, its boot files, and `<tftpRoot>/base` when it is the default). Refused
 * with BASE_IN_USE while a registered Pi was built from it, or, for the default base, while a
 * Pi relies on `<tftpRoot>/base` for its firmware (own-filesystem and adopted Pis).
 */
export async function removeBase(core: FleetCore, name: string): Promise<{ name: string; removed: boolean }> {
  core.requireRoot('remove-base');
  const release = await core.lockSetup();
  try {
    await settleSetups(core);
    await core.reload();
    const base = core.data.bases[name];
    if (!base) {
      // Folders of a base no registry knows (left by an older release's killed setup): the operator asked for them to go.
      const orphans = BASE_NAME.test(name) ? [join(core.nfsRoot, 'bases', name), join(core.stateDir, 'bases', name)] : [];
      let removed = false;
      for (const dir of orphans) {
        if (await exists(dir)) {
          await removeTree(dir);
          removed = true;
        }
      }
      return { name, removed };
    }
    const isDefault = core.data.defaultBase === name;
    const users = Object.values(core.data.pis).filter((p) => p.base === name || (isDefault && p.base === null));
    if (users.length) {
      throw new FleetError('BASE_IN_USE', `base ${name} is used by ${users.map((p) => p.serial).join(', ')}; remove those Pis first`);
    }
    const tag = randomBytes(4).toString('hex');
    const trash: string[] = [];
    const moves: Array<[string, string]> = [
      [base.rootDir, join(core.nfsRoot, 'bases', `.${name}.tmp-${tag}`)],
      [base.bootDir, join(core.stateDir, 'bases', `.${name}.tmp-${tag}`)],
    ];
    if (isDefault) moves.push([join(core.tftpRoot, 'base'), join(core.tftpRoot, `.base.tmp-${tag}`)]);
    for (const [from, to] of moves) {
      if (await exists(from)) {
        await rename(from, to);
        trash.push(to);
      }
    }
    await core.store.mutate((data) => {
      delete data.bases[name];
      if (data.defaultBase === name) data.defaultBase = null;
      return { write: true, value: undefined };
    });
    if (isDefault) await rm(join(core.tftpRoot, 'bootcode.bin'), { force: true });
    for (const path of trash) await removeTree(path);
    await core.reload();
    return { name, removed: true };
  } finally {
    await release();
  }
}
