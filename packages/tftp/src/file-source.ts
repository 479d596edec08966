import { open as openFile, stat } from 'node:fs/promises';
import { realpathSync, statSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { isAbsolute, join, sep } from 'node:path';
import { IotTofuError } from '@iot-tofu/errors';
import { isSerialFolderName } from '@iot-tofu/rpi';
import { sanitizeTftpPath } from './path.js';
import type { PathRejection } from './path.js';
import { silentLogger } from './logger.js';
import type { TftpLogger } from './logger.js';
import { ReadCache, Slots } from './read-cache.js';
import type { CachedData } from './read-cache.js';

/** Why a file could not be opened; `reason` is what transfer events report. */
export type FileErrorReason = 'not-found' | 'access-denied' | 'io-error';

export class TftpFileError extends IotTofuError {
  readonly reason: FileErrorReason;
  constructor(reason: FileErrorReason, message: string, options?: { cause?: unknown }) {
    super(`TFTP_${reason.toUpperCase().replace('-', '_')}`, message, options);
    this.reason = reason;
  }
}

/**
 * The bytes of one opened file. `read` answers synchronously when the bytes are in memory (the
 * hot path: cached files never cost an await per block) and with a promise otherwise.
 */
export interface FileBody {
  readonly size: number;
  /**
   * The whole file as a view on a SharedArrayBuffer, when it sits in the read cache: a transfer
   * thread reads it from there, with no copy and no second cache.
   */
  readonly shared?: Uint8Array;
  read(offset: number, length: number): Uint8Array | Promise<Uint8Array>;
  /** Gives the file back (drops the cache reference or closes the descriptor); idempotent. */
  release(): void;
}

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

function inodeKey(info: Stats): string {
  return `${info.dev}:${info.ino}`;
}

function identityOf(info: Stats): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
}

/** Reads into `target` from file offset `position` until it is full or the file ends; returns the bytes read. */
async function readFully(handle: FileHandle, target: Buffer, position: number): Promise<number> {
  let filled = 0;
  while (filled < target.length) {
    const { bytesRead } = await handle.read(target, filled, target.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

/**
 * A buffer in shared memory (transfer threads read cached files without a copy) holding `prefix`
 * and then the file from `prefix.length` on. Reads what the stat promised; a file that shrank
 * meanwhile yields what was there.
 */
async function readShared(handle: FileHandle, size: number, prefix: Uint8Array = Buffer.alloc(0)): Promise<Buffer> {
  const data = Buffer.from(new SharedArrayBuffer(size));
  data.set(prefix);
  const filled = prefix.length + (await readFully(handle, data.subarray(prefix.length), prefix.length));
  return filled === size ? data : data.subarray(0, filled);
}

/** Chunk of a file compared at a time against cached buffers of its size. */
const COMPARE_CHUNK = 1024 * 1024;
/**
 * Comparing loads at once: libuv's default thread pool runs 4 reads at a time, so more would
 * only queue reads while each holds its scratch chunk (60 Pis × 7 files at once held ~200 MiB).
 */
const COMPARE_SLOTS = 4;

/**
 * Reads a file while comparing it, chunk by chunk, with cached buffers of its size (memcmp
 * speed; hashing would cost more than the read on a Pi 4). A copy of cached bytes thus costs one
 * chunk of memory and no budget. At the first chunk no candidate equals, the bytes so far (equal
 * to the last candidates') and the chunk go into a fresh buffer, which `reserve` must allow
 * (false: undefined, the caller streams), and the rest of the file is read into it.
 */
async function readComparing(
  handle: FileHandle,
  size: number,
  candidates: readonly CachedData[],
  reserve: () => boolean,
): Promise<{ same: CachedData } | { data: Buffer } | undefined> {
  let matching = candidates;
  const scratch = Buffer.allocUnsafe(Math.min(COMPARE_CHUNK, size));
  for (let offset = 0; offset < size; ) {
    const wanted = Math.min(scratch.length, size - offset);
    const got = await readFully(handle, scratch.subarray(0, wanted), offset);
    const chunk = scratch.subarray(0, got);
    const still = got === wanted ? matching.filter((c) => c.data.subarray(offset, offset + got).equals(chunk)) : [];
    if (still.length === 0) {
      if (!reserve()) return undefined;
      const prefix = Buffer.concat([matching[0]!.data.subarray(0, offset), chunk]);
      // The file ended early (shrank since its stat): keep what was there, as readShared does.
      if (got < wanted) return { data: await readShared(handle, offset + got, prefix) };
      return { data: await readShared(handle, size, prefix) };
    }
    matching = still;
    offset += got;
  }
  return { same: matching[0]! };
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'ELOOP';
}

/** A body over bytes already in memory (a cache entry, a generated or converted file). */
export function memoryBody(data: Uint8Array, onRelease?: () => void): FileBody {
  return new MemoryBody(data, onRelease);
}

class MemoryBody implements FileBody {
  readonly shared: Uint8Array | undefined;
  constructor(
    private readonly data: Uint8Array,
    private readonly onRelease?: () => void,
  ) {
    this.shared = data.buffer instanceof SharedArrayBuffer ? data : undefined;
  }
  get size(): number {
    return this.data.length;
  }
  read(offset: number, length: number): Uint8Array {
    return this.data.subarray(offset, Math.min(offset + length, this.data.length));
  }
  private released = false;
  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease?.();
  }
}

/** A file too big for the cache: read in aligned chunks, the next chunk prefetched. */
class StreamedBody implements FileBody {
  private readonly chunks = new Map<number, Promise<Buffer>>();
  private readonly ready = new Map<number, Buffer>();
  private closed = false;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly chunkBytes: number,
  ) {}

  read(offset: number, length: number): Uint8Array | Promise<Uint8Array> {
    const end = Math.min(offset + length, this.size);
    const index = Math.floor(offset / this.chunkBytes);
    const chunkStart = index * this.chunkBytes;
    this.prefetch(index + 1);
    this.forgetBefore(index - 1);
    if (end <= chunkStart + this.chunkBytes) {
      const chunk = this.ready.get(index);
      if (chunk) return chunk.subarray(offset - chunkStart, end - chunkStart);
      return this.load(index).then((c) => c.subarray(offset - chunkStart, end - chunkStart));
    }
    // The range spans chunks (blksize does not divide chunkBytes, or a whole-file read): copy.
    const lastIndex = Math.floor((end - 1) / this.chunkBytes);
    const parts: Promise<Buffer>[] = [];
    for (let i = index; i <= lastIndex; i++) parts.push(this.load(i));
    return Promise.all(parts).then((chunks) => Buffer.concat(chunks).subarray(offset - chunkStart, end - chunkStart));
  }

  private prefetch(index: number): void {
    if (index * this.chunkBytes < this.size) void this.load(index).catch(() => undefined);
  }

  private forgetBefore(index: number): void {
    for (const key of this.chunks.keys()) {
      if (key < index) {
        this.chunks.delete(key);
        this.ready.delete(key);
      }
    }
  }

  private load(index: number): Promise<Buffer> {
    let pending = this.chunks.get(index);
    if (!pending) {
      pending = this.readChunk(index);
      this.chunks.set(index, pending);
      pending.then(
        (buffer) => {
          if (this.chunks.get(index) === pending) this.ready.set(index, buffer);
        },
        () => this.chunks.delete(index),
      );
    }
    return pending;
  }

  private async readChunk(index: number): Promise<Buffer> {
    if (this.closed) throw new TftpFileError('io-error', 'file already released');
    const start = index * this.chunkBytes;
    const length = Math.max(0, Math.min(this.chunkBytes, this.size - start));
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.handle.read(buffer, filled, length - filled, start + filled);
      if (bytesRead === 0) throw new TftpFileError('io-error', 'file shrank while it was being sent');
      filled += bytesRead;
    }
    return buffer;
  }

  release(): void {
    if (this.closed) return;
    this.closed = true;
    const pending = [...this.chunks.values()];
    this.chunks.clear();
    this.ready.clear();
    // Close only after in-flight reads settle, so no read hits a closed descriptor.
    void Promise.allSettled(pending).then(() => this.handle.close().catch(() => undefined));
  }
}

/**
 * Where TFTP bytes come from: a jailed root with a per-serial overlay, generated files, and a
 * shared read cache bounded in bytes. Concurrent transfers of one file share one in-memory copy,
 * read from disk once; files with identical bytes (per-Pi copies of one boot tree) share one copy;
 * a change on disk (size, mtime, ctime or inode) makes the next open reload.
 */
export class FileSource {
  readonly root: string;
  private readonly sharedFolder: string | null;
  private readonly isRegistered: (serial: string) => boolean;
  private readonly providers: readonly FileProvider[];
  private readonly prefixFallback: boolean;
  private readonly cacheMaxBytes: number;
  private readonly chunkBytes: number;
  private readonly logger: TftpLogger;
  private readonly cache: ReadCache;
  /** Loads in progress per inode: concurrent opens of one file read it once. */
  private readonly loading = new Map<string, Promise<CachedData | undefined>>();
  /** Per file size, the load reading bytes no cached buffer of that size had: later loads of that size wait for it. */
  private readonly producers = new Map<number, Promise<void>>();
  private readonly compareSlots = new Slots(COMPARE_SLOTS);
  private readonly jails = new Map<string, { real: string; at: number }>();
  private hits = 0;
  private misses = 0;
  private shared = 0;
  private streamed = 0;

  constructor(options: FileSourceOptions) {
    this.root = options.root;
    const shared = options.sharedFolder === undefined ? 'base' : options.sharedFolder;
    this.sharedFolder = shared === null ? null : isAbsolute(shared) ? shared : join(options.root, shared);
    this.isRegistered = options.isRegistered ?? (() => false);
    this.providers = options.providers ?? [];
    this.prefixFallback = options.prefixFallback ?? false;
    this.cacheMaxBytes = options.cacheMaxBytes ?? 256 * 1024 * 1024;
    this.cache = new ReadCache(this.cacheMaxBytes);
    this.chunkBytes = Math.max(4096, options.chunkBytes ?? 64 * 1024);
    this.logger = options.logger ?? silentLogger;
  }

  get stats(): FileSourceStats {
    const cache = this.cache.stats;
    return { cachedFiles: cache.files, cachedBuffers: cache.buffers, cachedBytes: cache.bytes, hits: this.hits, misses: this.misses, shared: this.shared, streamed: this.streamed };
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
      const generated = await provider({ path, file: rest, ...(serial ? { serial } : {}), ...(options.client ? { client: options.client } : {}) });
      if (generated !== undefined) {
        const data = typeof generated === 'string' ? Buffer.from(generated, 'utf8') : generated;
        return { ...base, origin: 'provider', body: new MemoryBody(data) };
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

  /**
   * Resolves a name under a jail. Path resolution uses the synchronous realpath/stat calls on
   * purpose, like dnsmasq and tftpd-hpa: they are dentry-cache lookups of a few microseconds,
   * while each trip through libuv's thread pool costs two wake-ups, which under load turned a
   * Pi's not-found probe into milliseconds. File contents are still read asynchronously.
   */
  private async openUnder(jail: string, segments: readonly string[], options: OpenOptions): Promise<FileBody | undefined> {
    let jailReal: string;
    let real: string;
    let info: Stats;
    try {
      jailReal = this.jailRealpath(jail);
      real = realpathSync.native(join(jailReal, ...segments));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.ioError(error);
    }
    if (real !== jailReal && !real.startsWith(jailReal.endsWith(sep) ? jailReal : jailReal + sep)) {
      this.logger.warn({ jail: jailReal }, 'tftp: request resolves outside its root (symlink), refused');
      throw new TftpFileError('access-denied', 'Access violation');
    }
    try {
      info = statSync(real);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.ioError(error);
    }
    if (!info.isFile()) throw new TftpFileError('not-found', 'File not found (not a regular file)');
    // Like tftpd-hpa: only files anyone may read are served, so a secret kept in a Pi's boot
    // folder (userconf.txt with the password hash, mode 0600) never leaves over TFTP, even when
    // the daemon runs as root.
    if ((info.mode & 0o004) === 0) {
      this.logger.warn({ file: real }, 'tftp: file is not world-readable, refused');
      throw new TftpFileError('access-denied', 'Access violation (not world-readable)');
    }
    return this.bodyFor(real, info, options);
  }

  /** A jail's realpath, remembered for a second (the root rarely moves; a swapped symlink is seen quickly). */
  private jailRealpath(jail: string): string {
    const now = Date.now();
    const known = this.jails.get(jail);
    if (known && now - known.at < 1000) return known.real;
    const real = realpathSync.native(jail);
    this.jails.set(jail, { real, at: now });
    return real;
  }

  private async bodyFor(real: string, info: Stats, options: OpenOptions): Promise<FileBody> {
    // Keyed by inode, not path: hard links (or bind mounts) of one boot tree are one entry; copies
    // (distinct inodes) share one buffer when their bytes are equal (see load).
    const key = inodeKey(info);
    const cached = this.cache.lookup(key, identityOf(info));
    if (cached) {
      this.hits++;
      return this.borrow(cached);
    }
    if (info.size <= this.cacheMaxBytes) {
      let pending = this.loading.get(key);
      if (!pending) {
        // The load's hold keeps fresh bytes from eviction until every open awaiting it has borrowed
        // them (their continuations run before the immediate): another load's reservation could
        // otherwise evict them in between, and bytes in use would leave the budget.
        const release = (loaded: CachedData | undefined) => {
          if (loaded) setImmediate(() => this.cache.giveBack(loaded));
          return loaded;
        };
        pending = this.load(real, info.size).then(release).finally(() => this.loading.delete(key));
        this.loading.set(key, pending);
      }
      const loaded = await pending;
      if (loaded) return this.borrow(loaded);
    }
    return this.stream(real, options);
  }

  private borrow(cached: CachedData): FileBody {
    this.cache.borrow(cached);
    return new MemoryBody(cached.data, () => this.cache.giveBack(cached));
  }

  /**
   * Reads a whole file into the cache, sharing the bytes of an identical cached file; undefined
   * when the budget cannot hold it now. While a load of the same size reads bytes nothing cached
   * had (likely another copy of this file), this one waits for it: comparing against those bytes
   * then needs no second buffer. Loads that compare run side by side.
   */
  private async load(real: string, expectedSize: number): Promise<CachedData | undefined> {
    for (let producer = this.producers.get(expectedSize); producer; producer = this.producers.get(expectedSize)) await producer;
    let produced: (() => void) | undefined;
    if (this.cache.sameSize(expectedSize).length === 0) {
      this.producers.set(expectedSize, new Promise<void>((resolve) => (produced = resolve)));
    }
    let reserved = 0;
    let handle: FileHandle | undefined;
    try {
      handle = await openFile(real, 'r');
      const info = await handle.stat();
      if (!info.isFile()) throw new TftpFileError('not-found', 'File not found (not a regular file)');
      // Filed under the inode actually read (the name may have been replaced since the stat).
      const key = inodeKey(info);
      // Reserve the bytes of a fresh buffer while reading, so parallel loads respect the budget too.
      const reserve = () => {
        if (!this.cache.reserve(info.size)) return false;
        reserved = info.size;
        this.misses++;
        return true;
      };
      let read: { same: CachedData } | { data: Buffer } | undefined;
      const free = this.cache.sameSize(info.size).length > 0 ? await this.compareSlots.take() : undefined;
      try {
        // Compared without pinning: one evicted meanwhile is still in memory, and share() re-indexes it.
        const candidates = this.cache.sameSize(info.size);
        if (candidates.length > 0) read = await readComparing(handle, info.size, candidates, reserve);
        else read = reserve() ? { data: await readShared(handle, info.size) } : undefined;
      } finally {
        free?.();
      }
      if (!read) return undefined;
      if ('same' in read) {
        this.misses++;
        const filed = this.cache.share(key, identityOf(info), read.same);
        if (filed) this.shared++;
        return this.held(filed);
      }
      // A file that changed between stat and read gets the identity of what we actually read.
      const identity = read.data.length === info.size ? identityOf(info) : `${identityOf(info)}:${read.data.length}`;
      this.cache.unreserve(reserved);
      reserved = 0;
      const filed = this.cache.add(key, identity, read.data);
      // Another load of these bytes finished first (a copy read at the same time): the fresh buffer goes.
      if (filed.data !== read.data) this.shared++;
      return this.held(filed);
    } catch (error) {
      if (error instanceof TftpFileError) throw error;
      if (isMissing(error)) throw new TftpFileError('not-found', 'File not found', { cause: error });
      throw this.ioError(error);
    } finally {
      this.cache.unreserve(reserved);
      if (produced) {
        this.producers.delete(expectedSize);
        produced();
      }
      await handle?.close().catch(() => undefined);
    }
  }

  /** Bytes a load returns are borrowed once (a hold): bodyFor gives it back (see there). */
  private held(cached: CachedData | undefined): CachedData | undefined {
    if (cached) this.cache.borrow(cached);
    return cached;
  }

  private async stream(real: string, options: OpenOptions): Promise<FileBody> {
    let handle: FileHandle;
    try {
      handle = await openFile(real, 'r');
    } catch (error) {
      if (isMissing(error)) throw new TftpFileError('not-found', 'File not found', { cause: error });
      throw this.ioError(error);
    }
    const info = await handle.stat();
    this.streamed++;
    const blksize = options.blksize ?? 512;
    const chunk = Math.max(blksize, Math.floor(this.chunkBytes / blksize) * blksize);
    return new StreamedBody(handle, info.size, chunk);
  }

  private ioError(error: unknown): TftpFileError {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return new TftpFileError('access-denied', 'Access violation', { cause: error });
    this.logger.warn({ err: error }, 'tftp: file read failed');
    return new TftpFileError('io-error', 'Read error', { cause: error });
  }
}
