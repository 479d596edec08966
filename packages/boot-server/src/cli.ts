#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option, type OptionValues } from 'commander';
import { IotTofuError } from '@iot-tofu/errors';
import { DHCP_ANSWERS, DHCP_MODES, LOG_LEVELS, type BootServerConfig } from './config.js';
import { BootServer, type ListeningSocket } from './daemon.js';
import { runDoctor, renderDoctor } from './doctor.js';
import { installBootServer } from './install.js';
import { loadConfig } from './load-config.js';
import { createLogger, type Logger } from './logger.js';
import { RUNTIME_FILE, collectStatus, renderStatus, writeRuntimeFile } from './status.js';
import { uninstallBootServer } from './uninstall.js';

const VERSION = '0.1.0';

/** Only the options the user actually typed: commander's defaults (`--no-dhcp` → dhcp=true) must not hide the file and env layers. */
function givenFlags(command: Command): Record<string, unknown> {
  const options: OptionValues = command.opts();
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (command.getOptionValueSource(key) === 'cli') out[key] = value;
  }
  return out;
}

function fail(message: string, exitCode = 1): never {
  process.stderr.write(`boot-server: ${message.split('\n')[0]}\n`);
  process.exit(exitCode);
}

function describeError(error: unknown): string {
  if (error instanceof IotTofuError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

function socketLine(socket: ListeningSocket): string {
  return `listening on ${socket.protocol} ${socket.address}:${socket.port} (${socket.service})`;
}

async function runStart(command: Command): Promise<void> {
  const flags = givenFlags(command);
  let loaded: Awaited<ReturnType<typeof loadConfig>>;
  try {
    loaded = await loadConfig({ flags, env: process.env, cwd: process.cwd() });
  } catch (error) {
    fail(describeError(error), 2);
  }
  const { config } = loaded;
  const logger = createLogger({ level: config.logLevel, pretty: process.stdout.isTTY === true });
  const server = new BootServer(config, { logger, version: VERSION });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      logger.flush();
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, `${signal}: shutting down`);
    void (async () => {
      await server.close();
      await rm(join(server.currentConfig.stateDir, RUNTIME_FILE), { force: true });
      logger.info('stopped');
      logger.flush();
      process.exit(0);
    })();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  let addresses: ListeningSocket[];
  try {
    addresses = await server.start();
  } catch (error) {
    logger.flush();
    fail(describeError(error), 1);
  }
  for (const socket of addresses)
    logger.info({ listen: socket.service, protocol: socket.protocol, address: socket.address, port: socket.port }, socketLine(socket));
  await writeRuntimeFile(config.stateDir, {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    addresses,
    serverIp: config.serverIp,
  }).catch((error: unknown) =>
    logger.warn({ err: error }, 'could not write the runtime file (boot-server status will not see this daemon)'),
  );
  logger.info(
    {
      serverIp: config.serverIp,
      tftpRoot: config.tftpRoot,
      nfsRoot: config.nfsRoot,
      stateDir: config.stateDir,
      dhcpAnswer: config.dhcpAnswer,
      configFile: loaded.file ?? null,
      apiToken: server.tokenPath ?? null,
    },
    `serving ${config.tftpRoot} as ${config.serverIp}${config.dhcp ? `, proxyDHCP answering ${config.dhcpAnswer} Pis` : ', proxyDHCP off'}${loaded.file ? ` (config ${loaded.file})` : ' (no config file: defaults)'}`,
  );

  process.on('SIGHUP', () => {
    void (async () => {
      try {
        const next = await loadConfig({ flags, env: process.env, cwd: process.cwd() });
        const restart = await server.reload(next.config);
        logger.info(
          { needsRestart: restart },
          restart.length ? `SIGHUP: config reloaded; restart needed for ${restart.join(', ')}` : 'SIGHUP: config reloaded',
        );
      } catch (error) {
        logger.error({ err: error }, `SIGHUP: config not reloaded: ${describeError(error)}`);
      }
    })();
  });
}

export function buildProgram(): Command {
  const program = new Command('boot-server')
    .description('iot-tofu boot server: proxyDHCP, TFTP, HTTP API and metrics for Raspberry Pi network boot')
    .version(VERSION)
    // One line per error, prefixed like our own messages.
    .configureOutput({ outputError: (text, write) => write(`boot-server: ${text.replace(/^error: /, '').trim()}\n`) });

  const start = program
    .command('start')
    .description('run the daemon until SIGINT/SIGTERM (SIGHUP reloads the config)')
    .option('--config <file>', 'JSON config file (default /etc/iot-tofu/config.json if present)')
    .option('--server-ip <ip>', 'our address in replies (default: the only non-internal IPv4)')
    .option('--tftp-root <dir>', 'TFTP root (default /tftpboot)')
    .option('--nfs-root <dir>', 'NFS roots (default /nfs)')
    .option('--state-dir <dir>', 'registry, learned facts, API token (default /var/lib/iot-tofu)')
    .option('--dhcp-port <n>', 'proxyDHCP port (default 67)')
    .option('--pxe-port <n>', 'PXE boot-server discovery port (default 4011)')
    .option('--tftp-port <n>', 'TFTP port (default 69)')
    .option('--no-dhcp', 'do not run the proxyDHCP server')
    .option('--no-tftp', 'do not run the TFTP server')
    .addOption(
      new Option('--dhcp-answer <mode>', 'which Raspberry Pis get a proxy offer (default registered)').choices(DHCP_ANSWERS as string[]),
    )
    .addOption(
      new Option(
        '--dhcp-mode <mode>',
        'proxy: PXE answers only, the site router hands out addresses (the default); full: also hand out addresses (a dedicated region LAN)',
      ).choices(DHCP_MODES as string[]),
    )
    .option('--dhcp-range <first-last>', 'full mode: the address pool, e.g. 10.77.0.100-10.77.0.199')
    .option('--dhcp-netmask <mask>', 'full mode: subnet mask handed out, e.g. 255.255.255.0')
    .option('--dhcp-router <ip>', 'full mode: default gateway handed out (none by default)')
    .option('--dhcp-dns <ips>', 'full mode: DNS servers handed out, comma-separated')
    .option('--dhcp-lease-time <seconds>', 'full mode: lease time (default 3600)')
    .option('--no-dhcp-conflict-check', 'full mode: offer fresh addresses without pinging them first')
    .option('--docker-disk <size>', 'docker disk of a Pi the API adds without naming one, e.g. 8G (0 = none, the default)')
    .option('--api-listen <ip>', 'HTTP API address (default 127.0.0.1)')
    .option('--api-port <n>', 'HTTP API port, 0 = off (default 8067)')
    .addOption(new Option('--log-level <level>', 'log level (default info)').choices(LOG_LEVELS as string[]))
    .option(
      '--tftp-threads <auto|n>',
      'TFTP transfer threads besides the main thread: auto (one per spare core, at most 3; the default), or N (0 = main thread only)',
    )
    .option(
      '--admission-budget <auto|n>',
      'boot-storm gate: auto (capacity steered by kernel transfer times, the default), or at most N Pis booting at once, others wait for a slot (0 = off)',
    )
    .option('--mqtt-url <url>', 'MQTT broker for boot events and Home Assistant discovery, e.g. mqtt://broker:1883 (off by default)')
    .option('--region <name>', 'MQTT topic segment: iot-tofu/<region>/pi/<serial>/… (default: the host name)')
    .action(async () => runStart(start));

  program
    .command('install')
    .description(
      'write the hardened systemd unit (system user iot-tofu, CAP_NET_BIND_SERVICE only), its sysusers.d/tmpfiles.d entries and a default config',
    )
    .option('--root <dir>', 'install below this root (packaging, tests); users and folders are made there too', '/')
    .option('--user <name>', 'system user the daemon runs as', 'iot-tofu')
    .option('--config <file>', 'config file path the unit passes to start', '/etc/iot-tofu/config.json')
    .option('--dry-run', 'print what would be written and run; change nothing')
    .action(async (options: { root: string; user: string; config: string; dryRun?: boolean }) => {
      try {
        const result = await installBootServer({
          root: options.root,
          execStart: [process.execPath, ...process.execArgv, cliScript()],
          configFile: options.config,
          user: options.user,
          dryRun: options.dryRun ?? false,
        });
        const verb = options.dryRun ? 'would ' : '';
        for (const action of result.actions) {
          if (action.kind === 'write') process.stdout.write(`${verb}write ${action.what}\n`);
          else if (action.kind === 'keep') process.stdout.write(`${verb}keep existing ${action.what}\n`);
          else process.stdout.write(`${verb}run ${action.what}\n`);
        }
        process.stdout.write(`nfs-kernel-server: ${result.nfsServerPresent ? 'present' : 'MISSING'}\n`);
        for (const note of result.notes) process.stdout.write(`${note}\n`);
      } catch (error) {
        fail(describeError(error));
      }
    });

  program
    .command('uninstall')
    .description(
      'stop and disable the service, remove the unit and its sysusers.d/tmpfiles.d entries; the fleet (Pis, bases, exports) stays',
    )
    .option('--root <dir>', 'uninstall below this root', '/')
    .option('--user <name>', 'system user the daemon ran as', 'iot-tofu')
    .option('--config <file>', 'config file the unit used', '/etc/iot-tofu/config.json')
    .option('--purge', 'also remove the config file and the system user')
    .option('--dry-run', 'print what would be removed and run; change nothing')
    .action(async (options: { root: string; user: string; config: string; purge?: boolean; dryRun?: boolean }) => {
      try {
        const result = await uninstallBootServer({
          root: options.root,
          user: options.user,
          configFile: options.config,
          purge: options.purge ?? false,
          dryRun: options.dryRun ?? false,
        });
        const verb = options.dryRun ? 'would ' : '';
        for (const action of result.actions)
          process.stdout.write(action.kind === 'run' ? `${verb}run ${action.what}\n` : `${verb}${action.what}\n`);
        if (result.actions.length === 0) process.stdout.write('nothing installed\n');
        process.stdout.write(`kept: ${result.kept.join(' ')}\n`);
        for (const note of result.notes) process.stdout.write(`${note}\n`);
      } catch (error) {
        fail(describeError(error));
      }
    });

  program
    .command('doctor')
    .description('check ports, nfsd, exports, folders and the service; print the Pi bootloader (EEPROM) settings our layout needs')
    .option('--config <file>', 'JSON config file')
    .option('--state-dir <dir>', 'state dir of the daemon')
    .option('--root <dir>', 'root the service was installed into', '/')
    .option('--json', 'machine-readable output')
    .action(async (options: { json?: boolean; root: string }, command: Command) => {
      const flags = givenFlags(command);
      delete flags.json;
      delete flags.root;
      let config: Omit<BootServerConfig, 'serverIp'> & { serverIp?: string };
      let file: string | undefined;
      let serverIpProblem: string | undefined;
      try {
        try {
          const loaded = await loadConfig({ flags, env: process.env, cwd: process.cwd() });
          config = loaded.config;
          file = loaded.file;
        } catch (error) {
          // Only the server IP may be unknown (several addresses): everything else is still worth checking.
          if (!(error instanceof IotTofuError) || !/serverIp/.test(error.message)) throw error;
          serverIpProblem = describeError(error);
          const loaded = await loadConfig({ flags: { serverIp: '0.0.0.0', ...flags }, env: process.env, cwd: process.cwd() });
          config = { ...loaded.config, serverIp: undefined };
          file = loaded.file;
        }
      } catch (error) {
        fail(describeError(error), 2);
      }
      const report = await runDoctor({
        config,
        root: options.root,
        ...(file ? { configFile: file } : {}),
        ...(serverIpProblem ? { serverIpProblem } : {}),
      });
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderDoctor(report));
      process.exitCode = report.ok ? 0 : 1;
    });

  program
    .command('status')
    .description('tell whether the daemon runs, where it listens, and what nfsd exports')
    .option('--config <file>', 'JSON config file')
    .option('--state-dir <dir>', 'state dir of the daemon')
    .option('--json', 'machine-readable output')
    .action(async (options: { config?: string; stateDir?: string; json?: boolean }, command: Command) => {
      const flags = givenFlags(command);
      delete flags.json;
      let config: Omit<BootServerConfig, 'serverIp'> & { serverIp?: string };
      let file: string | undefined;
      try {
        // A machine with several addresses has no default server IP; status does not need one.
        const loaded = await loadConfig({ flags: { serverIp: '0.0.0.0', ...flags }, env: process.env, cwd: process.cwd() });
        config = { ...loaded.config, serverIp: undefined };
        file = loaded.file;
      } catch (error) {
        fail(describeError(error), 2);
      }
      const report = await collectStatus({ config, ...(file ? { configFile: file } : {}) });
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
      process.exitCode = report.daemon.state === 'running' ? 0 : 3;
    });

  return program;
}

/** The script the unit's ExecStart runs: the file node was started with (npm's bin links resolved). */
function cliScript(): string {
  return process.argv[1] ? realpathSync(process.argv[1]) : fileURLToPath(import.meta.url);
}

/** Runs the CLI on `argv` (node and script first, like process.argv): the packaged bin wrappers call this. */
export async function run(argv: readonly string[] = process.argv): Promise<void> {
  await buildProgram()
    .parseAsync([...argv])
    .catch((error: unknown) => fail(describeError(error)));
}

function isMainModule(): boolean {
  if (!process.argv[1]) return false;
  try {
    // npm's bin is a symlink to dist/cli.js.
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isMainModule()) await run();

export type { Logger };
