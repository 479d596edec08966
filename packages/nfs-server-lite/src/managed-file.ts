import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IotTofuError } from '@iot-tofu/errors';
import { writeFileAtomic } from './atomic.js';
import { MANAGED_HEADER, parseExports, renderExports, type ExportEntry } from './exports.js';
import { execFileRunner, type CommandRunner } from './runner.js';

/** exportfs refused our file or could not run; the previous file content has been put back. */
export class ExportfsFailedError extends IotTofuError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EXPORTFS_FAILED', message, options);
  }
}

/** Minimal pino-compatible logger: libraries log through it and default to silence. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface ManagedExportsOptions {
  /** Our own file, e.g. /etc/exports.d/iot-tofu.exports; never the operator's /etc/exports. */
  file: string;
  runner?: CommandRunner;
  logger?: Logger;
  /** The exportfs binary (tests may point at a wrapper). */
  exportfs?: string;
}

/**
 * The exports file iot-tofu owns. Every change is: render (pure) → atomic write → `exportfs -ra`;
 * if exportfs rejects the result, the previous content is restored and re-applied, so the kernel
 * and the file never disagree for longer than one failed call.
 */
export class ManagedExports {
  readonly file: string;
  private readonly runner: CommandRunner;
  private readonly logger: Logger;
  private readonly exportfs: string;

  constructor(options: ManagedExportsOptions) {
    this.file = options.file;
    this.runner = options.runner ?? execFileRunner;
    this.logger = options.logger ?? silentLogger;
    this.exportfs = options.exportfs ?? 'exportfs';
  }

  /** Current entries; a missing file means none. */
  async read(): Promise<ExportEntry[]> {
    const text = await this.readText();
    return text === undefined ? [] : parseExports(text);
  }

  /** Applies `change` to the current entries, writes, reloads; rolls back if exportfs fails. */
  async update(change: (entries: ExportEntry[]) => ExportEntry[]): Promise<ExportEntry[]> {
    const previous = await this.readText();
    const next = change(previous === undefined ? [] : parseExports(previous));
    const text = renderExports(next, MANAGED_HEADER);
    if (text === previous) return next;
    await mkdir(dirname(this.file), { recursive: true });
    await writeFileAtomic(this.file, text);
    try {
      await this.reload();
    } catch (error) {
      this.logger.warn({ file: this.file, err: error }, 'exportfs rejected the new exports; restoring the previous file');
      if (previous === undefined) await rm(this.file, { force: true });
      else await writeFileAtomic(this.file, previous);
      await this.reload().catch((again: unknown) => this.logger.error({ err: again }, 'exportfs failed again after restoring exports'));
      throw error;
    }
    return next;
  }

  /** `exportfs -ra`: re-reads every exports file and syncs the kernel's table. */
  async reload(): Promise<void> {
    try {
      await this.runner(this.exportfs, ['-ra']);
      this.logger.debug({ file: this.file }, 'exportfs -ra');
    } catch (error) {
      const stderr = (error as { stderr?: unknown }).stderr;
      const detail = typeof stderr === 'string' && stderr.trim() ? stderr.trim().split('\n').filter(Boolean).slice(-2).join('; ') : error instanceof Error ? error.message : String(error);
      throw new ExportfsFailedError(`exportfs -ra failed: ${detail}`, { cause: error });
    }
  }

  /** Removes our file and reloads (reset). */
  async removeFile(): Promise<void> {
    if ((await this.readText()) === undefined) return;
    await rm(this.file, { force: true });
    await this.reload();
  }

  private async readText(): Promise<string | undefined> {
    try {
      return await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
}
