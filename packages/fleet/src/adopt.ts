import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSerialFolderName } from '@iot-tofu/rpi';
import type { FleetCore } from './core.js';
import { exists } from './fs-util.js';
import type { RegisteredPi } from './registry.js';

/**
 * Adopts an upstream pxetools installation: every `<tftpRoot>/<serial>/` with `owner` and `name`
 * files that we do not know yet becomes a registered Pi (base unknown) and gets our exports.
 * The operator's /etc/exports is never written; its lines for adopted Pis are returned so they
 * can be deleted by hand.
 */
export async function adoptUpstream(
  core: FleetCore,
  options: { upstreamExports?: string } = {},
): Promise<{ adopted: string[]; staleUpstreamExportLines: string[] }> {
  core.requireRoot('adopt');
  const adopted: string[] = [];
  const names = (await readdir(core.tftpRoot).catch(() => [] as string[])).filter(isSerialFolderName).sort();
  for (const short of names) {
    const dir = join(core.tftpRoot, short);
    const owner = await readFile(join(dir, 'owner'), 'utf8').catch(() => undefined);
    const name = await readFile(join(dir, 'name'), 'utf8').catch(() => undefined);
    if (owner === undefined || name === undefined) continue;
    const nfsDir = join(core.nfsRoot, short);
    const entry: RegisteredPi = {
      serial: short,
      serialFull: short,
      owner: owner.replace(/\n$/, ''),
      name: name.replace(/\n$/, ''),
      base: null,
      mac: null,
      ownFilesystem: false,
      addedAt: core.clock().toISOString(),
      exports: (await exists(nfsDir)) ? [nfsDir, dir] : [dir],
    };
    const added = await core.store.mutate(async (data) => {
      if (data.pis[short]) return { write: false, value: false };
      await core.export(entry.exports);
      data.pis[short] = entry;
      return { write: true, value: true };
    });
    if (added.value) adopted.push(short);
  }
  await core.reload();
  const upstream = await readFile(options.upstreamExports ?? '/etc/exports', 'utf8').catch(() => '');
  const staleUpstreamExportLines = upstream.split('\n').filter((line) => adopted.some((s) => line.startsWith(join(core.nfsRoot, s))));
  return { adopted, staleUpstreamExportLines };
}
