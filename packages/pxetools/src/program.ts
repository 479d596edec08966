/** The commander definition of pxetools: upstream's top-level flags, the subcommands, and which verb each runs. */
import { Command, Option } from 'commander';
import { DEFAULT_CONFIG_FILE } from '@iot-tofu/fleet';
import { USAGE, type Context, type TopOptions } from './context.js';
import {
  doAdd,
  doAdopt,
  doBases,
  doDiscovered,
  doList,
  doRemove,
  doRemoveBase,
  doReset,
  doResizeDockerDisk,
  doSetup,
  type SetupOptions,
} from './verbs.js';

export function buildProgram(ctx: Context, run: (task: Promise<void>) => void): Command {
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
    .option(
      '--docker-disk <size>',
      'docker disk: sparse ext4 image in the Pi root at /var/lib/docker, e.g. 8G, 0 = none (--add; default: config dockerDisk)',
    )
    .option('--ssh-key <file>', 'SSH public keys for the first user (--user), else root (--add)')
    .option('--user <name>', 'first user: Pi OS renames its uid-1000 user to this on first boot (--add, with --password-hash)')
    .option('--password-hash <hash>', 'crypt hash for --user, e.g. from openssl passwd -6 (--add; plain passwords are refused)')
    .addOption(
      new Option(
        '--resize-docker-disk <serial-and-size...>',
        'grow a docker disk offline: SERIAL SIZE (the Pi must be off; asks, or --yes)',
      ),
    )
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
      const verbs = [
        options.add !== undefined,
        options.remove !== undefined,
        !!options.list,
        options.resizeDockerDisk !== undefined,
      ].filter(Boolean).length;
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
  common(program.command('setup'))
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
