/**
 * Where TFTP bytes come from: a jailed root (jail.ts) with a per-serial overlay and generated
 * files, decided here in one order (see open); files up to the cache budget come from the shared
 * read cache (file-cache.ts), bigger ones stream from disk (streamed-body.ts).
 */
import { open as openFile, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { isSerialFolderName } from '@iot-tofu/rpi';
import { sanitizeTftpPath } from './path.js';
import type { PathRejection } from './path.js';
import { silentLogger } from './logger.js';
import type { TftpLogger } from './logger.js';
import { fileIoError, isMissing, TftpFileError } from './file-error.js';
import { memoryBody } from './file-body.js';
import type { FileBody } from './file-body.js';
import { FileCache } from './file-cache.js';
import { Jails } from './jail.js';
import { StreamedBody } from './streamed-body.js';

export interface OpenedFile {
  /** Sanitised request path (`/`-joined segments). */
  readonly path: string;
  /** The Pi's serial folder when the path starts with one (`9ffefdef/start4.elf`). */
  readonly serial?: string;
  readonly origin: 'disk' | 'shared' | 'provider';
  readonly body: FileBody;
}

export interface ProviderRequest {
  /** Sanitised request path, e.g. `9ffefdef/cmdline.txt`. */
  readonly path: string;
  readonly serial?: string;
  /** The path below the serial folder (`cmdline.txt`), or the whole path when there is no serial. */
  readonly file: string;
  readonly client?: { readonly address: string; readonly port: number };
}

/**
 * Generates a file on request (a Pi's own cmdline.txt, say). Returns undefined when it does not
 * handle the path. Providers are asked after `<root>/<serial>/<file>` and before the shared folder.
 */
export type FileProvider = (request: ProviderRequest) => Uint8Array | string | undefined | Promise<Uint8Array | string | undefined>;

export interface FileSourceOptions {
  /** TFTP root; every disk lookup stays inside its realpath. */
  readonly root: string;
  /** Folder (relative to root, or absolute) a registered Pi falls back to; null turns it off. Default `base`. */
  readonly sharedFolder?: string | null;
  /** Whether a serial may use the shared folder. Default: no serial may. */
  readonly isRegistered?: (serial: string) => boolean;
  readonly providers?: readonly FileProvider[];
  /**
   * docs/pi-netboot-protocol.md 3.5, off by default: `<serial>/<file>` falls back to `<root>/<file>` for any serial
   * (after the shared folder). The Pi's prefix probe then always succeeds, so it keeps its prefix.
   */
  readonly prefixFallback?: boolean;
  /** Memory the shared read cache may hold (default 256 MiB). Larger files stream from disk. */
  readonly cacheMaxBytes?: number;
  /**
   * Read size for files that stream from disk (default 64 KiB). A streaming transfer keeps the
   * previous, current and prefetched chunk, so this bounds its memory.
   */
  readonly chunkBytes?: number;
  readonly logger?: TftpLogger;
}

export interface OpenOptions {
  readonly client?: { readonly address: string; readonly port: number };
  /** Block size of the transfer: streamed chunks are aligned to it so a block never spans two reads. */
  readonly blksize?: number;
}

export interface FileSourceStats {
  /** Inodes in the cache. */
  readonly cachedFiles: number;
  /** Distinct byte buffers in the cache: inodes with identical contents share one. */
  readonly cachedBuffers: number;
  /** Memory of those buffers, each counted once. */
  readonly cachedBytes: number;
  readonly hits: number;
  /** Files read from disk into the cache (including those then found identical to cached bytes). */
  readonly misses: number;
  /** Misses whose bytes were already cached under another inode: filed there, no second buffer. */
  readonly shared: number;
  readonly streamed: number;
}

const REJECTION_TEXT: Record<PathRejection, string> = {
  empty: 'empty file name',
  'control-character': 'control character in file name',
  'parent-segment': '".." in file name',
  'too-long': 'file name too long',
};

export class FileSource {
  readonly root: string;
  private readonly sharedFolder: string | null;
  private readonly isRegistered: (serial: string) => boolean;
  private readonly providers: readonly FileProvider[];
  private readonly prefixFallback: boolean;
  private readonly chunkBytes: number;
  private readonly logger: TftpLogger;
  private readonly cache: FileCache;
  private readonly jails: Jails;
  private streamed = 0;

  constructor(options: FileSourceOptions) {
    this.root = options.root;
    const shared = options.sharedFolder === undefined ? 'base' : options.sharedFolder;
    this.sharedFolder = shared === null ? null : isAbsolute(shared) ? shared : join(options.root, shared);
    this.isRegistered = options.isRegistered ?? (() => false);
    this.providers = options.providers ?? [];
    this.prefixFallback = options.prefixFallback ?? false;
    this.chunkBytes = Math.max(4096, options.chunkBytes ?? 64 * 1024);
    this.logger = options.logger ?? silentLogger;
    this.cache = new FileCache(options.cacheMaxBytes ?? 256 * 1024 * 1024, this.logger);
    this.jails = new Jails(this.logger);
  }

  get stats(): FileSourceStats {
    const cache = this.cache.stats;
    return {
      cachedFiles: cache.files,
      cachedBuffers: cache.buffers,
      cachedBytes: cache.bytes,
      hits: cache.hits,
      misses: cache.misses,
      shared: cache.shared,
      streamed: this.streamed,
    };
  }

  /** Checks that the root exists and is a directory (for a one-line startup error). */
  async checkRoot(): Promise<void> {
    let info: Stats;
    try {
      info = await stat(this.root);
    } catch (error) {
      throw new TftpFileError('not-found', `TFTP root ${this.root} is not usable: ${(error as Error).message}`, { cause: error });
    }
    if (!info.isDirectory()) throw new TftpFileError('not-found', `TFTP root ${this.root} is not a directory`);
  }

  /**
   * Opens a requested name. Throws TftpFileError: `access-denied` for refused names or anything
   * resolving outside its root, `not-found` for missing or non-regular files. Messages are safe
   * to send to clients (no server paths).
   */
  async open(name: string, options: OpenOptions = {}): Promise<OpenedFile> {
    const sanitized = sanitizeTftpPath(name);
    if (!sanitized.ok) {
      if (sanitized.reason === 'empty') throw new TftpFileError('not-found', 'File not found');
      throw new TftpFileError('access-denied', `Access violation: ${REJECTION_TEXT[sanitized.reason]}`);
    }
    const segments = sanitized.segments;
    const path = segments.join('/');
    const first = segments[0]!;
    const serial = segments.length > 1 && isSerialFolderName(first) ? first : undefined;
    const rest = serial ? segments.slice(1).join('/') : path;
    const base = { path, ...(serial ? { serial } : {}) };

    const own = await this.openUnder(this.root, segments, options);
    if (own) return { ...base, origin: 'disk', body: own };

    for (const provider of this.providers) {
      const request = { path, file: rest, ...(serial ? { serial } : {}), ...(options.client ? { client: options.client } : {}) };
      const generated = await provider(request);
      if (generated !== undefined) {
        const data = typeof generated === 'string' ? Buffer.from(generated, 'utf8') : generated;
        return { ...base, origin: 'provider', body: memoryBody(data) };
      }
    }

    if (serial && this.sharedFolder && this.isRegistered(serial)) {
      const shared = await this.openUnder(this.sharedFolder, segments.slice(1), options);
      if (shared) return { ...base, origin: 'shared', body: shared };
    }
    if (serial && this.prefixFallback) {
      const unprefixed = await this.openUnder(this.root, segments.slice(1), options);
      if (unprefixed) return { ...base, origin: 'disk', body: unprefixed };
    }
    throw new TftpFileError('not-found', 'File not found');
  }

  /** Drops every cached file that no transfer is using. */
  clearCache(): void {
    this.cache.clear();
  }

  /** The body of `segments` under `jail`: cached when it fits the budget, else streamed; undefined when missing. */
  private async openUnder(jail: string, segments: readonly string[], options: OpenOptions): Promise<FileBody | undefined> {
    const found = this.jails.resolve(jail, segments);
    if (!found) return undefined;
    return (await this.cache.bodyFor(found.real, found.info)) ?? this.stream(found.real, options);
  }

  private async stream(real: string, options: OpenOptions): Promise<FileBody> {
    let handle: FileHandle;
    try {
      handle = await openFile(real, 'r');
    } catch (error) {
      if (isMissing(error)) throw new TftpFileError('not-found', 'File not found', { cause: error });
      throw fileIoError(error, this.logger);
    }
    const info = await handle.stat();
    this.streamed++;
    const blksize = options.blksize ?? 512;
    const chunk = Math.max(blksize, Math.floor(this.chunkBytes / blksize) * blksize);
    return new StreamedBody(handle, info.size, chunk);
  }
}
