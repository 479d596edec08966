/**
 * The pxetools verbs (--add, --remove, --list, --resize-docker-disk, setup, reset, bases,
 * remove-base, discovered, adopt): each checks its input, asks when it must, calls the fleet and
 * prints upstream's text or --json.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '@iot-tofu/host-io';
import {
  type Fleet,
  FleetError,
  chooseSetupSource,
  detectServerIp,
  type FleetConfig,
  type PiJson,
  type SetupSource,
  type SetupSourceFields,
  type SetupSourceProblem,
} from '@iot-tofu/fleet';
import { checkHostname, checkIpv4, checkOwner, normalizeMac, parseSerial } from '@iot-tofu/rpi';
import { renderTable } from './table.js';
import { progressReporter } from './terminal.js';
import {
  UsageError,
  confirm,
  loadConfig,
  openFleet,
  out,
  printJson,
  prompter,
  requireRoot,
  tty,
  valueOrPrompt,
  withFleet,
  type Context,
  type TopOptions,
} from './context.js';

export const LIST_HEADERS = ['Serial', 'Owner', 'Name', 'MAC', 'IP'] as const;

/** The upstream --list table for registered Pis (docs/pxetools-compat.md B1 items 21-25, sorted, no stray rows). */
export function listTable(pis: readonly PiJson[]): string {
  return renderTable(
    [...LIST_HEADERS],
    pis.map((p) => [`0x${p.serial}`, p.owner || 'Not Found', p.name || 'Not Found', p.mac, p.ip ?? 'Not found']),
  );
}

export async function doAdd(ctx: Context, options: TopOptions): Promise<void> {
  const serial = parseSerial(options.add ?? '').short;
  requireRoot(ctx);
  await withFleet(ctx, true, async (fleet, config) => {
    if (fleet.isRegistered({ serial }))
      throw new FleetError('PI_EXISTS', `Pi ${serial} is already registered (${config.tftpRoot}/${serial} exists)`);
    if (options.ownFilesystem && options.base) throw new UsageError('choose either --base or --own-filesystem, not both');
    if (!ctx.json) out(ctx, `Serial: ${serial}`);
    // Each answer is checked with the same rule as the API before anything says "Setting up".
    const owner = checkOwner(await valueOrPrompt(ctx, options.owner, '--owner', 'Owner name: '));
    const name = checkHostname(await valueOrPrompt(ctx, options.name, '--name', 'Pi name: '));
    if (options.mac) normalizeMac(options.mac);
    if (options.ip !== undefined) checkIpv4(options.ip);
    let base = options.base;
    let own = options.ownFilesystem ?? false;
    if (!base && !own) {
      if (!tty(ctx)) throw new UsageError('--base NAME (or --own-filesystem) is required when stdin is not a terminal');
      const bases = fleet.bases().map((b) => b.name);
      out(ctx, 'Select a base image:');
      const items = ['I will prepare my own filesystem', ...bases];
      for (const [i, item] of items.entries()) out(ctx, `\t${i + 1}. ${item}`);
      const answer = await prompter(ctx).ask('Enter an option number: ');
      const choice = /^\s*-?\d+\s*$/.test(answer) ? Number.parseInt(answer, 10) : Number.NaN;
      if (!Number.isInteger(choice) || choice < 1 || choice > items.length) throw new UsageError(`Invalid image choice ${answer}`);
      if (choice === 1) own = true;
      else base = bases[choice - 2];
    }
    let configTxt: string | undefined;
    if (options.configTxt !== undefined) {
      const { readFile } = await import('node:fs/promises');
      configTxt = await readFile(options.configTxt, 'utf8').catch((error: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read --config-txt ${options.configTxt}: ${error.code ?? error.message}`);
      });
    }
    if (base && !fleet.bases().some((b) => b.name === base)) {
      const known = fleet.bases().map((b) => b.name);
      throw new FleetError(
        'BASE_NOT_FOUND',
        `base ${base} does not exist${known.length ? ` (bases: ${known.join(', ')})` : ' (run pxetools setup first)'}`,
      );
    }
    let sshKeys: string | undefined;
    if (options.sshKey !== undefined) {
      const { readFile } = await import('node:fs/promises');
      sshKeys = await readFile(options.sshKey, 'utf8').catch((error: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read --ssh-key ${options.sshKey}: ${error.code ?? error.message}`);
      });
    }
    if ((options.user === undefined) !== (options.passwordHash === undefined))
      throw new UsageError('--user and --password-hash go together (a crypt hash: openssl passwd -6)');
    if (!ctx.json) ctx.io.stdout.write('\nSetting up pi...\n\n');
    const bar = progressReporter(ctx.io, { json: ctx.json });
    const result = await fleet.add(
      {
        serial: options.add ?? serial,
        owner,
        name,
        ...(base ? { base } : {}),
        ...(options.mac ? { mac: options.mac } : {}),
        ownFilesystem: own,
        ...(configTxt !== undefined ? { configTxt } : {}),
        ...(options.dockerDisk !== undefined ? { dockerDisk: options.dockerDisk } : {}),
        ...(options.ip !== undefined ? { ip: options.ip } : {}),
        ...(sshKeys !== undefined ? { sshKeys } : {}),
        ...(options.user !== undefined ? { user: options.user } : {}),
        ...(options.passwordHash !== undefined ? { passwordHash: options.passwordHash } : {}),
      },
      { onProgress: (p) => bar.update(p) },
    );
    bar.done();
    if (ctx.json) {
      printJson(ctx, result.pi);
      return;
    }
    if (own) {
      out(ctx, 'You opted to prep your own system so please put files in:');
      out(ctx, `\t${result.pi.tftpDir}`);
      out(ctx, `\t${result.pi.nfsDir}`);
      out(ctx, "I have wrote you a cmdline.txt so don't change it:");
      out(ctx, result.cmdline);
    }
    out(ctx, 'Should be working, you might have to wait SSH lets you in.');
  });
}

/**
 * Grows a Pi's docker disk (e2fsck -f, larger file, resize2fs). The Pi must be off: the server
 * cannot see whether the Pi has the image mounted, and resizing a mounted image from outside
 * corrupts it. Hence the question (or --yes).
 */
export async function doResizeDockerDisk(ctx: Context, options: TopOptions): Promise<void> {
  const args = options.resizeDockerDisk ?? [];
  if (args.length !== 2) throw new UsageError('usage: pxetools --resize-docker-disk SERIAL SIZE [--yes] (e.g. 9f55bbfd 16G)');
  const serial = parseSerial(args[0]!).short;
  const size = args[1]!;
  requireRoot(ctx);
  if (
    !(await confirm(
      ctx,
      options.yes,
      `IS PI ${serial} SWITCHED OFF? RESIZING THE DOCKER DISK OF A RUNNING PI CORRUPTS IT. Y/N: `,
      `resize the docker disk of ${serial} (the Pi must be off)`,
    ))
  ) {
    out(ctx, 'Aborting');
    return;
  }
  await withFleet(ctx, false, async (fleet) => {
    const result = await fleet.resizeDockerDisk(serial, size);
    if (ctx.json) printJson(ctx, result);
    else
      out(
        ctx,
        `Docker disk of ${serial}: ${Math.round(result.fromBytes / 1024 / 1024)} MB -> ${Math.round(result.bytes / 1024 / 1024)} MB`,
      );
  });
}

export async function doRemove(ctx: Context, options: TopOptions): Promise<void> {
  const serial = parseSerial(options.remove ?? '').short;
  requireRoot(ctx);
  if (!(await confirm(ctx, options.yes, `ARE YOU SURE YOU WANT TO DELETE ${serial}? Y/N: `, `delete ${serial}`))) {
    out(ctx, 'Aborting');
    return;
  }
  await withFleet(ctx, false, async (fleet, config) => {
    const result = await fleet.remove(serial);
    if (ctx.json) printJson(ctx, result);
    else if (result.removed) {
      out(ctx, `Removing from ${config.exportsFile}`);
      out(ctx, `Removed ${serial}`);
    } else out(ctx, `${serial} is not registered; nothing to remove`);
  });
}

export async function doList(ctx: Context, options: TopOptions): Promise<void> {
  await withFleet(ctx, false, async (fleet) => {
    // The neighbour table knows IPs of Pis that talked to us; shown, not saved (the daemon owns seen.json).
    await fleet.learnFromNeighbours({ persist: false });
    const pis = fleet.list();
    if (ctx.json) {
      printJson(ctx, options.discovered ? { pis, discovered: fleet.discovered() } : pis);
      return;
    }
    out(ctx, listTable(pis));
    if (options.discovered) {
      out(ctx, '');
      out(ctx, discoveredTable(fleet));
    }
  });
}

function discoveredTable(fleet: Fleet): string {
  return renderTable(
    ['Serial', 'MAC', 'IP', 'Model', 'Last seen'],
    fleet.discovered().map((d) => [d.serial ? `0x${d.serial}` : 'unknown', d.mac, d.ip ?? 'Not found', d.model ?? 'unknown', d.lastSeen]),
  );
}

export interface SetupOptions extends SetupSourceFields {
  base: string;
  default?: boolean;
  serverIp?: string;
  tftpRoot?: string;
  nfsRoot?: string;
  stateDir?: string;
  exportsFile?: string;
  exportsClients?: string;
}

const SOURCE_USAGE: Readonly<Record<SetupSourceProblem, string>> = {
  'not-exactly-one': 'give exactly one source: --image FILE, --boot-tarball FILE --root-tarball FILE, or --boot-dir DIR --rootfs-dir DIR',
  'tarball-pair': '--boot-tarball and --root-tarball go together',
  'dir-pair': '--boot-dir and --rootfs-dir go together',
};

function setupSource(o: SetupOptions): SetupSource {
  const choice = chooseSetupSource(o);
  if ('problem' in choice) throw new UsageError(SOURCE_USAGE[choice.problem]);
  return choice.source;
}

export async function doSetup(ctx: Context, o: SetupOptions): Promise<void> {
  const source = setupSource(o);
  requireRoot(ctx);
  const flags: Partial<FleetConfig> = {};
  for (const key of ['serverIp', 'tftpRoot', 'nfsRoot', 'stateDir', 'exportsFile', 'exportsClients'] as const)
    if (o[key] !== undefined) flags[key] = o[key];
  const { config, file } = await loadConfig(ctx, flags);
  config.serverIp ??= detectServerIp();
  const fleet = await openFleet(ctx, config, true);
  try {
    const bar = progressReporter(ctx.io, { json: ctx.json });
    const result = await fleet.setup(
      { base: o.base, source, ...(o.default ? { makeDefault: true } : {}) },
      { onProgress: (p) => bar.update(p) },
    );
    bar.done();
    // The daemon reads the same file: keep its other keys, set the fleet ones.
    const next: Record<string, unknown> = {
      ...file,
      tftpRoot: config.tftpRoot,
      nfsRoot: config.nfsRoot,
      stateDir: config.stateDir,
      exportsFile: config.exportsFile,
      serverIp: config.serverIp,
    };
    if (config.exportsClients) next.exportsClients = config.exportsClients;
    await mkdir(dirname(ctx.configFile), { recursive: true });
    await writeFileAtomic(ctx.configFile, `${JSON.stringify(next, null, 2)}\n`);
    if (ctx.json) printJson(ctx, { base: result.base, configFile: ctx.configFile });
    else {
      out(
        ctx,
        `Base ${result.base.name} imported: ${result.base.files} files, ${Math.round(result.base.bytes / 1024 / 1024)} MB, ${result.base.layout} layout${result.base.default ? ', default' : ''}`,
      );
      out(ctx, `Config written to ${ctx.configFile}`);
      out(ctx, 'Now run sudo pxetools --add <serial>');
    }
  } finally {
    await fleet.close();
  }
}

export async function doReset(ctx: Context, o: { yes?: boolean }): Promise<void> {
  requireRoot(ctx);
  if (!(await confirm(ctx, o.yes, 'RESET REMOVES EVERY PI, EVERY BASE AND THE IOT-TOFU EXPORTS. ARE YOU SURE? Y/N: ', 'reset'))) {
    out(ctx, 'Aborting');
    return;
  }
  await withFleet(ctx, false, async (fleet) => {
    const result = await fleet.reset();
    if (ctx.json) printJson(ctx, result);
    else out(ctx, `Reset done: removed ${result.removed.length} Pi(s) and ${result.bases.length} base(s)`);
  });
}

export async function doRemoveBase(ctx: Context, name: string, yes: boolean | undefined): Promise<void> {
  requireRoot(ctx);
  if (!(await confirm(ctx, yes, `ARE YOU SURE YOU WANT TO DELETE BASE ${name}? Y/N: `, `delete base ${name}`))) {
    out(ctx, 'Aborting');
    return;
  }
  await withFleet(ctx, false, async (fleet) => {
    const result = await fleet.removeBase(name);
    if (ctx.json) printJson(ctx, result);
    else out(ctx, result.removed ? `Removed base ${name}` : `base ${name} does not exist; nothing to remove`);
  });
}

export async function doBases(ctx: Context): Promise<void> {
  await withFleet(ctx, false, async (fleet) => {
    const bases = fleet.bases();
    if (ctx.json) printJson(ctx, bases);
    else
      out(
        ctx,
        renderTable(
          ['Name', 'Default', 'Layout', 'MB', 'Source'],
          bases.map((b) => [b.name, b.default ? 'yes' : 'no', b.layout, String(Math.round(b.bytes / 1024 / 1024)), b.source]),
        ),
      );
  });
}

export async function doDiscovered(ctx: Context): Promise<void> {
  await withFleet(ctx, false, async (fleet) => {
    if (ctx.json) printJson(ctx, fleet.discovered());
    else out(ctx, discoveredTable(fleet));
  });
}

export async function doAdopt(ctx: Context, o: { upstreamExports?: string }): Promise<void> {
  requireRoot(ctx);
  await withFleet(ctx, true, async (fleet) => {
    const result = await fleet.adopt(o.upstreamExports ? { upstreamExports: o.upstreamExports } : {});
    if (ctx.json) printJson(ctx, result);
    else {
      out(ctx, result.adopted.length ? `Adopted: ${result.adopted.join(' ')}` : 'Nothing to adopt');
      if (result.staleUpstreamExportLines.length) {
        out(ctx, 'These upstream lines in /etc/exports are now duplicates; delete them by hand:');
        for (const line of result.staleUpstreamExportLines) out(ctx, `\t${line}`);
      }
    }
  });
}
