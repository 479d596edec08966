/**
 * What every pxetools verb shares: the run's context (I/O, --json, config file), output, prompts,
 * the root check and opening the fleet. The upstream texts the verbs print live here too.
 */
import { pino } from 'pino';
import { IotTofuError } from '@iot-tofu/errors';
import { Fleet, detectServerIp, type FleetConfig } from '@iot-tofu/fleet';
import { loadCliConfig } from './config.js';
import { Prompter, type CliIo } from './terminal.js';

/** Upstream's usage text, byte for byte (docs/pxetools-compat.md B1 item 3). */
export const USAGE = 'Usage:\n\tpxetools --add serial\n\tpxetools --remove serial\n\tpxetools --list\n';
export const ROOT_MESSAGE = 'Please run with sudo or as root user';

/** A user mistake caught by the CLI itself (missing flag, bad choice); exit 1 with one line. */
export class UsageError extends IotTofuError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Tells main() to end with this exit code, after whatever was printed. */
export class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export interface Context {
  io: CliIo;
  json: boolean;
  configFile: string;
  prompter?: Prompter;
}

export function out(ctx: Context, text: string): void {
  ctx.io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function printJson(ctx: Context, value: unknown): void {
  ctx.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function tty(ctx: Context): boolean {
  return !!ctx.io.stdin.isTTY;
}

export function prompter(ctx: Context): Prompter {
  ctx.prompter ??= new Prompter(ctx.io);
  return ctx.prompter;
}

export function requireRoot(ctx: Context): void {
  if (!ctx.io.isRoot()) {
    ctx.io.stderr.write(`${ROOT_MESSAGE}\n`);
    throw new Exit(1);
  }
}

/** A value from a flag, else a prompt on a terminal, else a clear error (never hangs: docs/pxetools-compat.md E7). */
export async function valueOrPrompt(ctx: Context, given: string | undefined, flag: string, question: string): Promise<string> {
  if (given !== undefined) return given;
  if (!tty(ctx)) throw new UsageError(`${flag} is required when stdin is not a terminal`);
  return prompter(ctx).ask(question);
}

/** Upstream's Y/N loop: repeats until exactly Y or N. */
export async function confirm(ctx: Context, yes: boolean | undefined, question: string, what: string): Promise<boolean> {
  if (yes) return true;
  if (!tty(ctx)) throw new UsageError(`refusing to ${what} without confirmation: pass --yes (stdin is not a terminal)`);
  for (;;) {
    const answer = await prompter(ctx).ask(question);
    if (answer === 'Y') return true;
    if (answer === 'N') return false;
  }
}

export async function loadConfig(
  ctx: Context,
  flags: Partial<FleetConfig> = {},
): Promise<{ config: FleetConfig; file: Record<string, unknown> }> {
  return loadCliConfig(ctx.configFile, ctx.io.env, flags);
}

export async function openFleet(ctx: Context, config: FleetConfig, needServerIp: boolean): Promise<Fleet> {
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
export async function withFleet<T>(
  ctx: Context,
  needServerIp: boolean,
  use: (fleet: Fleet, config: FleetConfig) => Promise<T>,
): Promise<T> {
  const { config } = await loadConfig(ctx);
  const fleet = await openFleet(ctx, config, needServerIp);
  try {
    return await use(fleet, config);
  } finally {
    await fleet.close();
  }
}

export interface TopOptions {
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
