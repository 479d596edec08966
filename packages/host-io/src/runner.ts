import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

/** What an external command printed; a non-zero exit rejects with a CommandFailedError. */
export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Milliseconds before the command is killed; default 10 minutes (image imports are slow). */
  timeoutMs?: number;
}

/**
 * Runs one program with an argument vector (never a shell string). Injected everywhere an external
 * command runs, so tests can observe calls and make any step fail.
 */
export type CommandRunner = (file: string, args: readonly string[], options?: RunOptions) => Promise<CommandResult>;

/** A command exited non-zero or could not start; stderr is kept for the one-line error message. */
export class CommandFailedError extends Error {
  readonly file: string;
  readonly args: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(file: string, args: readonly string[], exitCode: number | null, stderr: string, cause?: unknown) {
    const detail = stderr.trim().split('\n').filter(Boolean).slice(-3).join('; ');
    super(`${file} ${args.join(' ')} failed${exitCode === null ? '' : ` (exit ${exitCode})`}${detail ? `: ${detail}` : ''}`, { cause });
    this.name = 'CommandFailedError';
    this.file = file;
    this.args = args;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** The real runner: child_process.execFile with a generous buffer and a timeout. */
export const execFileRunner: CommandRunner = (file, args, options = {}) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      { cwd: options.cwd, env: options.env, timeout: options.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error) {
          const code = typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : null;
          reject(new CommandFailedError(file, args, code, stderr || error.message, error));
        } else resolve({ stdout, stderr });
      },
    );
  });

/** util-linux's setpriv, where this machine has it (Debian and Pi OS do). */
export function findSetpriv(candidates = ['/usr/bin/setpriv', '/bin/setpriv']): string | undefined {
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Runs every command with the parent-death signal set (`setpriv --pdeathsig KILL`): when pxetools
 * or the daemon is killed (an operator's kill -9, the OOM killer), the kernel kills its `cp -a`
 * too, instead of leaving it writing into a temp tree the next verb wants to sweep. Without
 * setpriv the commands run as they are.
 */
export function childrenDieWithUs(runner: CommandRunner, setpriv = findSetpriv()): CommandRunner {
  if (!setpriv) return runner;
  return async (file, args, options) => {
    try {
      return await runner(setpriv, ['--pdeathsig', 'KILL', '--', file, ...args], options);
    } catch (error) {
      // Name the program the caller ran, not the wrapper: "cp -a … failed", never "setpriv … failed".
      if (!(error instanceof CommandFailedError)) throw error;
      throw new CommandFailedError(file, args, error.exitCode, error.stderr, error);
    }
  };
}
