import { realpathSync, statSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join, sep } from 'node:path';
import { fileIoError, isMissing, TftpFileError } from './file-error.js';
import type { TftpLogger } from './logger.js';

/** A regular, world-readable file found inside a jail. */
export interface JailedFile {
  readonly real: string;
  readonly info: Stats;
}

/**
 * Resolves request paths inside jail folders (the TFTP root, the shared folder): whatever
 * symlinks say, a path whose realpath leaves its jail is refused, and only regular files anyone
 * may read are served.
 *
 * Resolution uses the synchronous realpath/stat calls on purpose, like dnsmasq and tftpd-hpa:
 * they are dentry-cache lookups of a few microseconds, while each trip through libuv's thread
 * pool costs two wake-ups, which under load turned a Pi's not-found probe into milliseconds.
 */
export class Jails {
  private readonly realpaths = new Map<string, { real: string; at: number }>();

  constructor(private readonly logger: TftpLogger) {}

  /**
   * The file `segments` name under `jail`; undefined when it does not exist. Throws TftpFileError:
   * `access-denied` outside the jail or not world-readable, `not-found` for a non-regular file.
   */
  resolve(jail: string, segments: readonly string[]): JailedFile | undefined {
    let jailReal: string;
    let real: string;
    let info: Stats;
    try {
      jailReal = this.jailRealpath(jail);
      const path = join(jailReal, ...segments);
      // Most requests a Pi makes name files that do not exist: a stat that answers "none" without
      // throwing spares building an exception per probe (realpath has no such mode).
      if (statSync(path, { throwIfNoEntry: false }) === undefined) return undefined;
      real = realpathSync.native(path);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw fileIoError(error, this.logger);
    }
    if (real !== jailReal && !real.startsWith(jailReal.endsWith(sep) ? jailReal : jailReal + sep)) {
      this.logger.warn({ jail: jailReal }, 'tftp: request resolves outside its root (symlink), refused');
      throw new TftpFileError('access-denied', 'Access violation');
    }
    try {
      info = statSync(real);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw fileIoError(error, this.logger);
    }
    if (!info.isFile()) throw new TftpFileError('not-found', 'File not found (not a regular file)');
    // Like tftpd-hpa: only files anyone may read are served, so a secret kept in a Pi's boot
    // folder (userconf.txt with the password hash, mode 0600) never leaves over TFTP, even when
    // the daemon runs as root.
    if ((info.mode & 0o004) === 0) {
      this.logger.warn({ file: real }, 'tftp: file is not world-readable, refused');
      throw new TftpFileError('access-denied', 'Access violation (not world-readable)');
    }
    return { real, info };
  }

  /** A jail's realpath, remembered for a second (the root rarely moves; a swapped symlink is seen quickly). */
  private jailRealpath(jail: string): string {
    const now = Date.now();
    const known = this.realpaths.get(jail);
    if (known && now - known.at < 1000) return known.real;
    const real = realpathSync.native(jail);
    this.realpaths.set(jail, { real, at: now });
    return real;
  }
}
