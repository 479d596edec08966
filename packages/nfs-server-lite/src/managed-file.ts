import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IotTofuError } from '@iot-tofu/errors';
import { execFileRunner, silentLogger, writeFileAtomic, type CommandRunner, type Logger } from '@iot-tofu/host-io';
import { classifyExportfsStderr, exportfsFailureIsOurs, type ExportfsIssue } from './exportfs-errors.js';
import { MANAGED_HEADER, parseExports, renderExports, type ExportEntry } from './exports.js';

/** exportfs refused our file or could not run; the previous file content has been put back. */
export class ExportfsFailedError extends IotTofuError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EXPORTFS_FAILED', message, options);
  }
}

export interface ManagedExportsOptions {
  /** Our own file, e.g. /etc/exports.d/iot-tofu.exports; never the operator's /etc/exports. */
  file: string;
  runner?: CommandRunner;
  logger?: Logger;
  /** The exportfs binary (tests may point at a wrapper). */
  exportfs?: string;
  /** Wall clock for `foreignIssues.at` (default: now). */
  clock?: () => Date;
}

/** What the last `exportfs -ra` said about exports files and paths that are not ours. */
export interface ForeignExportsIssues {
  at: string;
  issues: ExportfsIssue[];
}

/**
 * The exports file iot-tofu owns. Every change is: render (pure) → atomic write → `exportfs -ra`;
 * if exportfs rejects the result, the previous content is restored and re-applied, so the kernel
 * and the file never disagree for longer than one failed call. exportfs also reads everyone
 * else's exports files: complaints that only concern those are logged as warnings and kept in
 * `foreignIssues` (for health) instead of failing our change.
 */
export class ManagedExports {
  readonly file: string;
  private readonly runner: CommandRunner;
  private readonly logger: Logger;
  private readonly exportfs: string;
  private readonly clock: () => Date;
  private foreign: ForeignExportsIssues | undefined;

  constructor(options: ManagedExportsOptions) {
    this.file = options.file;
    this.runner = options.runner ?? execFileRunner;
    this.logger = options.logger ?? silentLogger;
    this.exportfs = options.exportfs ?? 'exportfs';
    this.clock = options.clock ?? (() => new Date());
  }

  /** Problems in other exports files that the last reload tolerated; undefined after a clean run. */
  get foreignIssues(): ForeignExportsIssues | undefined {
    return this.foreign;
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
      await this.reload(next);
    } catch (error) {
      this.logger.warn({ file: this.file, err: error }, 'exportfs rejected the new exports; restoring the previous file');
      if (previous === undefined) await rm(this.file, { force: true });
      else await writeFileAtomic(this.file, previous);
      await this.reload(previous === undefined ? [] : parseExports(previous)).catch((again: unknown) =>
        this.logger.error({ err: again }, 'exportfs failed again after restoring exports'),
      );
      throw error;
    }
    return next;
  }

  /**
   * `exportfs -ra`: re-reads every exports file and syncs the kernel's table. Fails when exportfs
   * complains about our file, our paths or our clients, or about something it does not name;
   * complaints only about others' exports are warnings. `entries` is what our file holds now
   * (default: read it).
   */
  async reload(entries?: readonly ExportEntry[]): Promise<void> {
    try {
      await this.runner(this.exportfs, ['-ra']);
      this.logger.debug({ file: this.file }, 'exportfs -ra');
      this.foreign = undefined;
    } catch (error) {
      const stderr = (error as { stderr?: unknown }).stderr;
      const ours = entries ?? (await this.read().catch(() => []));
      const issues =
        typeof stderr === 'string'
          ? classifyExportfsStderr(stderr, {
              file: this.file,
              paths: ours.map((e) => e.path),
              hosts: ours.flatMap((e) => e.clients.map((c) => c.host)),
            })
          : [];
      if (!exportfsFailureIsOurs(issues)) {
        this.foreign = { at: this.clock().toISOString(), issues };
        this.logger.warn(
          { file: this.file, issues: issues.map((i) => i.message) },
          'exportfs complained about exports that are not ours; ours were applied',
        );
        return;
      }
      const relevant = issues.filter((i) => i.scope !== 'foreign');
      const detail = relevant.length
        ? relevant
            .map((i) => `exportfs: ${i.message}`)
            .slice(-2)
            .join('; ')
        : error instanceof Error
          ? error.message
          : String(error);
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
