import { readFile, rm } from 'node:fs/promises';
import { execFileRunner, type CommandRunner } from '@iot-tofu/host-io';
import { DEFAULT_CONFIG_FILE } from './load-config.js';
import {
  SERVICE_USER,
  SYSUSERS_PATH,
  TMPFILES_PATH,
  UNIT_NAME,
  UNIT_PATH,
  below,
  defaultWhich,
  fleetPathsOf,
  systemdRunning,
  type FleetPaths,
  type InstallAction,
} from './install.js';

export interface UninstallOptions {
  root: string;
  configFile?: string;
  user?: string;
  /** Also remove the config file and the system user. Fleet data is never removed. */
  purge?: boolean;
  dryRun?: boolean;
  which?: (program: string) => Promise<string | undefined>;
  runner?: CommandRunner;
  systemdRunning?: () => Promise<boolean>;
}

export interface UninstallResult {
  actions: InstallAction[];
  /** Folders and files left in place (the fleet: Pis, bases, registry, exports). */
  kept: string[];
  notes: string[];
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(
    () => true,
    () => false,
  );
}

/**
 * Undoes `install`: stops and disables the service (when systemd runs), removes the unit and the
 * sysusers.d/tmpfiles.d entries; with purge also the config and the system user. The TFTP and NFS
 * roots, the state dir and the exports file stay: they are the fleet (`pxetools reset` empties it).
 */
export async function uninstallBootServer(options: UninstallOptions): Promise<UninstallResult> {
  const root = options.root;
  const user = options.user ?? SERVICE_USER;
  const configFile = options.configFile ?? DEFAULT_CONFIG_FILE;
  const configPath = below(root, configFile);
  const runner = options.runner ?? execFileRunner;
  const which = options.which ?? defaultWhich;
  const dryRun = options.dryRun ?? false;
  const actions: InstallAction[] = [];
  const notes: string[] = [];
  let data: unknown;
  try {
    data = JSON.parse(await readFile(configPath, 'utf8'));
  } catch {
    data = undefined;
  }
  const paths: FleetPaths = fleetPathsOf(data);

  const run = async (file: string, args: string[], tolerate: boolean): Promise<void> => {
    actions.push({ kind: 'run', what: [file, ...args].join(' ') });
    if (dryRun) return;
    try {
      await runner(file, args);
    } catch (error) {
      if (!tolerate) throw error;
      notes.push(`${(error as Error).message.split('\n')[0]} (ignored)`);
    }
  };

  const live = root === '/' && (await (options.systemdRunning ?? systemdRunning)());
  const systemctl = live ? await which('systemctl') : undefined;
  // A unit that is not loaded makes `disable --now` fail; uninstall is idempotent, so that is fine.
  if (systemctl) await run(systemctl, ['disable', '--now', UNIT_NAME], true);

  const removals = [below(root, `/${UNIT_PATH}`), below(root, `/${SYSUSERS_PATH}`), below(root, `/${TMPFILES_PATH}`)];
  if (options.purge) removals.push(configPath);
  for (const path of removals) {
    if (!(await exists(path))) continue;
    actions.push({ kind: 'write', what: `remove ${path}` });
    if (!dryRun) await rm(path, { force: true });
  }
  if (systemctl) await run(systemctl, ['daemon-reload'], true);

  if (options.purge) {
    const userdel = await which('userdel');
    if (userdel) await run(userdel, [...(root === '/' ? [] : ['--root', root]), user], true);
    else notes.push(`userdel not found: remove the system user ${user} by hand`);
  }
  const kept = [paths.tftpRoot, paths.nfsRoot, paths.stateDir, paths.exportsFile, ...(options.purge ? [] : [configPath])];
  notes.push('the fleet stays (Pis, bases, registry, exports): `sudo pxetools reset --yes` before uninstall empties it');
  return { actions, kept, notes };
}

export { UNIT_NAME };
