import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { pino } from 'pino';
import { IotTofuError } from '@iot-tofu/errors';
import { writeFileAtomic } from '@iot-tofu/host-io';
import { DEFAULT_CONFIG_FILE, Fleet, FleetError, chooseSetupSource, configFilePath, detectServerIp, type FleetConfig, type PiJson, type SetupSource, type SetupSourceFields, type SetupSourceProblem } from '@iot-tofu/fleet';
import { checkHostname, checkIpv4, checkOwner, normalizeMac, parseSerial } from '@iot-tofu/rpi';
import { loadCliConfig } from './config.js';
import { renderTable } from './table.js';
import { Prompter, progressReporter, type CliIo } from './terminal.js';

/** Upstream's usage text, byte for byte (docs/pxetools-compat.md B1 item 3). */
export const USAGE = 'Usage:\n\tpxetools --add serial\n\tpxetools --remove serial\n\tpxetools --list\n';
export const ROOT_MESSAGE = 'Please run with sudo or as root user';
export const LIST_HEADERS = ['Serial', 'Owner', 'Name', 'MAC', 'IP'] as const;

const TOP_LEVEL = new Set(['--add', '--remove', '--list', '--help', '-h', '--version', '-V', '--config', '--json', '--yes', '--owner', '--name', '--base', '--mac', '--ip', '--own-filesystem', '--config-txt', '--docker-disk', '--ssh-key', '--user', '--password-hash', '--resize-docker-disk', '--discovered']);
const SUBCOMMANDS = new Set(['setup', 'reset', 'bases', 'remove-base', 'discovered', 'adopt', 'help']);

/** The upstream --list table for registered Pis (docs/pxetools-compat.md B1 items 21-25, sorted, no stray rows). */
export function listTable(pis: readonly PiJson[]): string {
  return renderTable(
    [...LIST_HEADERS],
    pis.map((p) => [`0x${p.serial}`, p.owner || 'Not Found', p.name || 'Not Found', p.mac, p.ip ?? 'Not found']),
  );
}

/** A user mistake caught by the CLI itself (missing flag, bad choice); exit 1 with one line. */
class UsageError extends IotTofuError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Tells main() to end with this exit code, after whatever was printed. */
class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

interface Context {
  io: CliIo;
  json: boolean;
  configFile: string;
  prompter?: Prompter;
}

function out(ctx: Context, text: string): void {
  ctx.io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function printJson(ctx: Context, value: unknown): void {
  ctx.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function tty(ctx: Context): boolean {
  return !!ctx.io.stdin.isTTY;
}

function prompter(ctx: Context): Prompter {
  ctx.prompter ??= new Prompter(ctx.io);
  return ctx.prompter;
}

function requireRoot(ctx: Context): void {
  if (!ctx.io.isRoot()) {
    ctx.io.stderr.write(`${ROOT_MESSAGE}\n`);
    throw new Exit(1);
  }
}

/** A value from a flag, else a prompt on a terminal, else a clear error (never hangs: E7). */
async function valueOrPrompt(ctx: Context, given: string | undefined, flag: string, question: string): Promise<string> {
  if (given !== undefined) return given;
  if (!tty(ctx)) throw new UsageError(`${flag} is required when stdin is not a terminal`);
  return prompter(ctx).ask(question);
}

/** Upstream's Y/N loop: repeats until exactly Y or N. */
async function confirm(ctx: Context, yes: boolean | undefined, question: string, what: string): Promise<boolean> {
  if (yes) return true;
  if (!tty(ctx)) throw new UsageError(`refusing to ${what} without confirmation: pass --yes (stdin is not a terminal)`);
  for (;;) {
    const answer = await prompter(ctx).ask(question);
    if (answer === 'Y') return true;
    if (answer === 'N') return false;
  }
}

async function loadConfig(ctx: Context, flags: Partial<FleetConfig> = {}): Promise<{ config: FleetConfig; file: Record<string, unknown> }> {
  return loadCliConfig(ctx.configFile, ctx.io.env, flags);
}

async function openFleet(ctx: Context, config: FleetConfig, needServerIp: boolean): Promise<Fleet> {
  let serverIp = config.serverIp;
  if (!serverIp) serverIp = needServerIp ? detectServerIp() : '127.0.0.1';
  // Errors reach the operator as one line; the log is for debugging (IOT_TOFU_LOG_LEVEL=debug).
  const level = ctx.io.env.IOT_TOFU_LOG_LEVEL ?? 'silent';
  const logger = pino({ level, base: undefined }, pino.destination({ dest: 2, sync: true }));
  return Fleet.open({
    tftpRoot: config.tftpRoot,
    nfsRoot: config.nfsRoot,
    stateDir: config.stateDir,
    exportsFile: config.exportsFile,
    ...(config.exportsClients ? { exportsClients: config.exportsClients } : {}),
    serverIp,
    logger,
    isRoot: ctx.io.isRoot,
    ...(config.dockerDisk !== undefined ? { dockerDiskDefault: config.dockerDisk } : {}),
  });
}

/** Loads the config, opens the fleet, runs `use` and always closes the fleet (flushing learned facts). */
async function withFleet<T>(ctx: Context, needServerIp: boolean, use: (fleet: Fleet, config: FleetConfig) => Promise<T>): Promise<T> {
  const { config } = await loadConfig(ctx);
  const fleet = await openFleet(ctx, config, needServerIp);
  try {
    return await use(fleet, config);
  } finally {
    await fleet.close();
  }
}

interface TopOptions {
  add?: string;
  remove?: string;
  list?: boolean;
  owner?: string;
  name?: string;
  base?: string;
  mac?: string;
  ip?: string;
  ownFilesystem?: boolean;
  configTxt?: string;
  dockerDisk?: string;
  sshKey?: string;
  user?: string;
  passwordHash?: string;
  resizeDockerDisk?: string[];
  yes?: boolean;
  json?: boolean;
  config?: string;
  discovered?: boolean;
}

async function doAdd(ctx: Context, options: TopOptions): Promise<void> {
  const serial = parseSerial(options.add ?? '').short;
  requireRoot(ctx);
  await withFleet(ctx, true, async (fleet, config) => {
    if (fleet.isRegistered({ serial })) throw new FleetError('PI_EXISTS', `Pi ${serial} is already registered (${config.tftpRoot}/${serial} exists)`);
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
      throw new FleetError('BASE_NOT_FOUND', `base ${base} does not exist${known.length ? ` (bases: ${known.join(', ')})` : ' (run pxetools setup first)'}`);
    }
    let sshKeys: string | undefined;
    if (options.sshKey !== undefined) {
      const { readFile } = await import('node:fs/promises');
      sshKeys = await readFile(options.sshKey, 'utf8').catch((error: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read --ssh-key ${options.sshKey}: ${error.code ?? error.message}`);
      });
    }
    if ((options.user === undefined) !== (options.passwordHash === undefined)) throw new UsageError('--user and --password-hash go together (a crypt hash: openssl passwd -6)');
    if (!ctx.json) ctx.io.stdout.write('\nSetting up pi...\n\n');
    const bar = progressReporter(ctx.io, { json: ctx.json });
    const result = await fleet.add(
      { serial: options.add ?? serial, owner, name, ...(base ? { base } : {}), ...(options.mac ? { mac: options.mac } : {}), ownFilesystem: own, ...(configTxt !== undefined ? { configTxt } : {}),
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
async function doResizeDockerDisk(ctx: Context, options: TopOptions): Promise<void> {
  const args = options.resizeDockerDisk ?? [];
  if (args.length !== 2) throw new UsageError('usage: pxetools --resize-docker-disk SERIAL SIZE [--yes] (e.g. 9f55bbfd 16G)');
  const serial = parseSerial(args[0]!).short;
  const size = args[1]!;
  requireRoot(ctx);
  if (!(await confirm(ctx, options.yes, `IS PI ${serial} SWITCHED OFF? RESIZING THE DOCKER DISK OF A RUNNING PI CORRUPTS IT. Y/N: `, `resize the docker disk of ${serial} (the Pi must be off)`))) {
    out(ctx, 'Aborting');
    return;
  }
  await withFleet(ctx, false, async (fleet) => {
    const result = await fleet.resizeDockerDisk(serial, size);
    if (ctx.json) printJson(ctx, result);
    else out(ctx, `Docker disk of ${serial}: ${Math.round(result.fromBytes / 1024 / 1024)} MB -> ${Math.round(result.bytes / 1024 / 1024)} MB`);
  });
}

async function doRemove(ctx: Context, options: TopOptions): Promise<void> {
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

async function doList(ctx: Context, options: TopOptions): Promise<void> {
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

interface SetupOptions extends SetupSourceFields {
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

async function doSetup(ctx: Context, o: SetupOptions): Promise<void> {
  const source = setupSource(o);
  requireRoot(ctx);
  const flags: Partial<FleetConfig> = {};
  for (const key of ['serverIp', 'tftpRoot', 'nfsRoot', 'stateDir', 'exportsFile', 'exportsClients'] as const) if (o[key] !== undefined) flags[key] = o[key];
  const { config, file } = await loadConfig(ctx, flags);
  config.serverIp ??= detectServerIp();
  const fleet = await openFleet(ctx, config, true);
  try {
    const bar = progressReporter(ctx.io, { json: ctx.json });
    const result = await fleet.setup({ base: o.base, source, ...(o.default ? { makeDefault: true } : {}) }, { onProgress: (p) => bar.update(p) });
    bar.done();
    // The daemon reads the same file: keep its other keys, set the fleet ones.
    const next: Record<string, unknown> = { ...file, tftpRoot: config.tftpRoot, nfsRoot: config.nfsRoot, stateDir: config.stateDir, exportsFile: config.exportsFile, serverIp: config.serverIp };
    if (config.exportsClients) next.exportsClients = config.exportsClients;
    await mkdir(dirname(ctx.configFile), { recursive: true });
    await writeFileAtomic(ctx.configFile, `${JSON.stringify(next, null, 2)}\n`);
    if (ctx.json) printJson(ctx, { base: result.base, configFile: ctx.configFile });
    else {
      out(ctx, `Base ${result.base.name} imported: ${result.base.files} files, ${Math.round(result.base.bytes / 1024 / 1024)} MB, ${result.base.layout} layout${result.base.default ? ', default' : ''}`);
      out(ctx, `Config written to ${ctx.configFile}`);
      out(ctx, 'Now run sudo pxetools --add <serial>');
    }
  } finally {
    await fleet.close();
  }
}

async function doReset(ctx: Context, o: { yes?: boolean }): Promise<void> {
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

async function doRemoveBase(ctx: Context, name: string, yes: boolean | undefined): Promise<void> {
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

async function doBases(ctx: Context): Promise<void> {
  await withFleet(ctx, false, async (fleet) => {
    const bases = fleet.bases();
    if (ctx.json) printJson(ctx, bases);
    else out(ctx, renderTable(['Name', 'Default', 'Layout', 'MB', 'Source'], bases.map((b) => [b.name, b.default ? 'yes' : 'no', b.layout, String(Math.round(b.bytes / 1024 / 1024)), b.source])));
  });
}

async function doDiscovered(ctx: Context): Promise<void> {
  await withFleet(ctx, false, async (fleet) => {
    if (ctx.json) printJson(ctx, fleet.discovered());
    else out(ctx, discoveredTable(fleet));
  });
}

async function doAdopt(ctx: Context, o: { upstreamExports?: string }): Promise<void> {
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

function buildProgram(ctx: Context, run: (task: Promise<void>) => void): Command {
  const program = new Command('pxetools');
  program
    .description('Manage netbooted Raspberry Pis by serial number (pxetools-compatible)')
    .addOption(new Option('--add <serial>', 'register a Pi (8 or 16 hex digits)'))
    .addOption(new Option('--remove <serial>', 'unexport and delete a Pi'))
    .option('--list', 'list registered Pis (upstream table)')
    .option('--owner <owner>', 'owner of the Pi (--add)')
    .option('--name <name>', 'host name of the Pi (--add)')
    .option('--base <base>', 'base to copy the root from (--add)')
    .option('--mac <mac>', "the Pi's MAC when known (--add)")
    .option('--ip <address>', 'a fixed address for the Pi, handed out by the boot server in full-DHCP mode (--add)')
    .option('--own-filesystem', 'create empty folders; you provide the files (--add)')
    .option('--config-txt <file>', 'config.txt for this Pi only (--add)')
    .option('--docker-disk <size>', 'docker disk: sparse ext4 image in the Pi root at /var/lib/docker, e.g. 8G, 0 = none (--add; default: config dockerDisk)')
    .option('--ssh-key <file>', 'SSH public keys for the first user (--user), else root (--add)')
    .option('--user <name>', "first user: Pi OS renames its uid-1000 user to this on first boot (--add, with --password-hash)")
    .option('--password-hash <hash>', 'crypt hash for --user, e.g. from openssl passwd -6 (--add; plain passwords are refused)')
    .addOption(new Option('--resize-docker-disk <serial-and-size...>', 'grow a docker disk offline: SERIAL SIZE (the Pi must be off; asks, or --yes)'))
    .option('--discovered', 'also list Pis seen but not registered (--list)')
    .option('--yes', 'do not ask for confirmation')
    .option('--json', 'machine-readable output')
    .option('--config <file>', `config file (default ${DEFAULT_CONFIG_FILE} or $IOT_TOFU_CONFIG)`)
    .version('0.1.0')
    // Program options only before a subcommand: `setup --base` is setup's, `--add X --base` the top level's.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.io.stdout.write(s), writeErr: () => undefined })
    .action((options: TopOptions) => {
      applyGlobals(ctx, options);
      const verbs = [options.add !== undefined, options.remove !== undefined, !!options.list, options.resizeDockerDisk !== undefined].filter(Boolean).length;
      if (verbs !== 1) {
        ctx.io.stdout.write(USAGE);
        return;
      }
      if (options.add !== undefined) run(doAdd(ctx, options));
      else if (options.remove !== undefined) run(doRemove(ctx, options));
      else if (options.resizeDockerDisk !== undefined) run(doResizeDockerDisk(ctx, options));
      else run(doList(ctx, options));
    });
  const common = (command: Command): Command =>
    command
      .option('--json', 'machine-readable output')
      .option('--config <file>', 'config file')
      .option('--yes', 'do not ask for confirmation')
      .exitOverride()
      .configureOutput({ writeOut: (s) => ctx.io.stdout.write(s), writeErr: () => undefined });
  const globals = (command: Command): TopOptions => ({ ...program.opts(), ...command.opts() });
  common(program
    .command('setup'))
    .description('import a base from an image, a boot/root tarball pair or two directories; writes the config')
    .requiredOption('--base <name>', 'name of the base')
    .option('--image <file>', 'Raspberry Pi OS image (.img or .img.xz)')
    .option('--boot-tarball <file>', 'boot.tar.xz')
    .option('--root-tarball <file>', 'root.tar.xz')
    .option('--boot-dir <dir>', 'boot files directory')
    .option('--rootfs-dir <dir>', 'root filesystem directory')
    .option('--default', "serve this base's boot files from <tftpRoot>/base")
    .option('--server-ip <ip>', 'address Pis mount their roots from')
    .option('--tftp-root <dir>')
    .option('--nfs-root <dir>')
    .option('--state-dir <dir>')
    .option('--exports-file <file>')
    .option('--exports-clients <spec>', 'who may mount, e.g. 192.168.10.0/24')
    .action((o: SetupOptions, command: Command) => {
      applyGlobals(ctx, globals(command));
      run(doSetup(ctx, o));
    });
  common(program.command('reset'))
    .description('remove every Pi, every base and the exports (asks first)')
    .action((_o: unknown, command: Command) => {
      const o = globals(command);
      applyGlobals(ctx, o);
      run(doReset(ctx, { yes: o.yes }));
    });
  common(program.command('bases'))
    .description('list imported bases')
    .action((_o: unknown, command: Command) => {
      applyGlobals(ctx, globals(command));
      run(doBases(ctx));
    });
  common(program.command('remove-base'))
    .description('delete a base no Pi uses (asks first)')
    .argument('<name>', 'base name')
    .action((name: string, _o: unknown, command: Command) => {
      const o = globals(command);
      applyGlobals(ctx, o);
      run(doRemoveBase(ctx, name, o.yes));
    });
  common(program.command('discovered'))
    .description('list Pis seen on the network but not registered')
    .action((_o: unknown, command: Command) => {
      applyGlobals(ctx, globals(command));
      run(doDiscovered(ctx));
    });
  common(program.command('adopt'))
    .description('take over an upstream pxetools installation (/tftpboot/<serial>/owner|name)')
    .option('--upstream-exports <file>', 'upstream exports file to check for duplicates', '/etc/exports')
    .action((o: { upstreamExports?: string }, command: Command) => {
      applyGlobals(ctx, globals(command));
      run(doAdopt(ctx, o));
    });
  return program;
}

function applyGlobals(ctx: Context, options: TopOptions): void {
  ctx.json = !!options.json;
  if (options.config) ctx.configFile = options.config;
}

function errorLine(error: unknown): string {
  if (error instanceof IotTofuError) return `Error: ${error.message} (${error.code})`;
  if (error instanceof Error) return `Error: ${error.message}`;
  return `Error: ${String(error)}`;
}

/** Runs the CLI with `argv` (without node and script). Resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || !(TOP_LEVEL.has(argv[0]!.split('=')[0]!) || SUBCOMMANDS.has(argv[0]!))) {
    // Upstream dispatches on argv[1] only and prints the usage for anything else (B1 item 3).
    io.stdout.write(USAGE);
    return 0;
  }
  const ctx: Context = { io, json: false, configFile: configFilePath(undefined, io.env).path };
  let task: Promise<void> | undefined;
  const program = buildProgram(ctx, (t) => (task = t));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    if (task) await task;
    return 0;
  } catch (error) {
    if (error instanceof Exit) return error.code;
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return 0;
      io.stderr.write(`${error.message.replace(/^error: /, 'Error: ')}\n`);
      return 1;
    }
    if (ctx.json) io.stdout.write(`${JSON.stringify({ error: { code: error instanceof IotTofuError ? error.code : 'ERROR', message: error instanceof Error ? error.message : String(error) } })}\n`);
    io.stderr.write(`${errorLine(error)}\n`);
    return 1;
  } finally {
    ctx.prompter?.close();
  }
}
