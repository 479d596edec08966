/**
 * The pxetools entry point: upstream's dispatch on the first argument, the run of the commander program
 * (program.ts) and the exit code and error line of every outcome.
 */
import { CommanderError } from 'commander';
import { IotTofuError } from '@iot-tofu/errors';
import { configFilePath } from '@iot-tofu/fleet';
import type { CliIo } from './terminal.js';
import { Exit, USAGE, type Context } from './context.js';
import { buildProgram } from './program.js';

export { USAGE, ROOT_MESSAGE } from './context.js';
export { LIST_HEADERS, listTable } from './verbs.js';

const TOP_LEVEL = new Set([
  '--add',
  '--remove',
  '--list',
  '--help',
  '-h',
  '--version',
  '-V',
  '--config',
  '--json',
  '--yes',
  '--owner',
  '--name',
  '--base',
  '--mac',
  '--ip',
  '--own-filesystem',
  '--config-txt',
  '--docker-disk',
  '--ssh-key',
  '--user',
  '--password-hash',
  '--resize-docker-disk',
  '--discovered',
]);
const SUBCOMMANDS = new Set(['setup', 'reset', 'bases', 'remove-base', 'discovered', 'adopt', 'help']);

function errorLine(error: unknown): string {
  if (error instanceof IotTofuError) return `Error: ${error.message} (${error.code})`;
  if (error instanceof Error) return `Error: ${error.message}`;
  return `Error: ${String(error)}`;
}

/** Runs the CLI with `argv` (without node and script). Resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || !(TOP_LEVEL.has(argv[0]!.split('=')[0]!) || SUBCOMMANDS.has(argv[0]!))) {
    // Upstream dispatches on argv[1] only and prints the usage for anything else (docs/pxetools-compat.md B1 item 3).
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
    if (ctx.json)
      io.stdout.write(
        `${JSON.stringify({ error: { code: error instanceof IotTofuError ? error.code : 'ERROR', message: error instanceof Error ? error.message : String(error) } })}\n`,
      );
    io.stderr.write(`${errorLine(error)}\n`);
    return 1;
  } finally {
    ctx.prompter?.close();
  }
}
