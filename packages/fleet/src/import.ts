import { mkdir } from 'node:fs/promises';
import type { CommandRunner } from '@iot-tofu/host-io';
import { FleetError } from './errors.js';
import { copyTree } from './copy.js';
import { importImage, type ImportContext } from './image.js';
import type { SetupSource } from './types.js';

export type { ImportContext };

/** Extracts a tarball keeping numeric owners, modes, setuid bits, links, device nodes and xattrs. */
async function extractTarball(runner: CommandRunner, tarball: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true, mode: 0o755 });
  try {
    await runner('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarball, '-C', dest]);
  } catch (error) {
    throw new FleetError('IMPORT_FAILED', `cannot extract ${tarball}: ${(error as Error).message}`, { cause: error });
  }
}

/** Fills bootDest and rootDest (which must not exist yet) from one setup source. */
export async function importSource(source: SetupSource, context: ImportContext): Promise<void> {
  if (source.kind === 'image') {
    await importImage(source.image, context);
    return;
  }
  await context.step('setup:boot');
  if (source.kind === 'tarballs') await extractTarball(context.runner, source.boot, context.bootDest);
  else await copyTree(context.runner, source.boot, context.bootDest);
  await context.step('setup:root');
  if (source.kind === 'tarballs') await extractTarball(context.runner, source.root, context.rootDest);
  else await copyTree(context.runner, source.root, context.rootDest);
}
