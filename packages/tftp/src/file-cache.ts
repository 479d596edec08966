/**
 * The cache side of FileSource: files up to the budget are read once into shared memory and
 * borrowed by every transfer of them; copies with identical bytes share one buffer (compared
 * while read, see readComparing); concurrent opens of one inode wait for one load.
 */
import { open as openFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { fileIoError, isMissing, TftpFileError } from './file-error.js';
import { memoryBody } from './file-body.js';
import type { FileBody } from './file-body.js';
import type { TftpLogger } from './logger.js';
import { ReadCache, Slots } from './read-cache.js';
import type { CachedData } from './read-cache.js';

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

/** Counters of what the cache did (see FileSourceStats). */
export interface FileCacheCounters {
  readonly hits: number;
  readonly misses: number;
  readonly shared: number;
}

export class FileCache {
  private readonly cache: ReadCache;
  /** Loads in progress per inode: concurrent opens of one file read it once. */
  private readonly loading = new Map<string, Promise<CachedData | undefined>>();
  /** Per file size, the load reading bytes no cached buffer of that size had: later loads of that size wait for it. */
  private readonly producers = new Map<number, Promise<void>>();
  private readonly compareSlots = new Slots(COMPARE_SLOTS);
  private hits = 0;
  private misses = 0;
  private shared = 0;

  constructor(
    readonly maxBytes: number,
    private readonly logger: TftpLogger,
  ) {
    this.cache = new ReadCache(maxBytes);
  }

  get stats(): ReadCache['stats'] & FileCacheCounters {
    return { ...this.cache.stats, hits: this.hits, misses: this.misses, shared: this.shared };
  }

  /** Drops every cached file that no transfer is using. */
  clear(): void {
    this.cache.clear();
  }

  /**
   * A body over the cached bytes of `real` (stat'ed as `info`), loading them when needed;
   * undefined when the file is over the budget or the budget cannot hold it now (the caller streams).
   */
  async bodyFor(real: string, info: Stats): Promise<FileBody | undefined> {
    // Keyed by inode, not path: hard links (or bind mounts) of one boot tree are one entry; copies
    // (distinct inodes) share one buffer when their bytes are equal (see load).
    const key = inodeKey(info);
    const cached = this.cache.lookup(key, identityOf(info));
    if (cached) {
      this.hits++;
      return this.borrow(cached);
    }
    if (info.size <= this.maxBytes) {
      let pending = this.loading.get(key);
      if (!pending) {
        // The load's hold keeps fresh bytes from eviction until every open awaiting it has borrowed
        // them (their continuations run before the immediate): another load's reservation could
        // otherwise evict them in between, and bytes in use would leave the budget.
        const release = (loaded: CachedData | undefined) => {
          if (loaded) setImmediate(() => this.cache.giveBack(loaded));
          return loaded;
        };
        pending = this.load(real, info.size)
          .then(release)
          .finally(() => this.loading.delete(key));
        this.loading.set(key, pending);
      }
      const loaded = await pending;
      if (loaded) return this.borrow(loaded);
    }
    return undefined;
  }

  private borrow(cached: CachedData): FileBody {
    this.cache.borrow(cached);
    return memoryBody(cached.data, () => this.cache.giveBack(cached));
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
      throw fileIoError(error, this.logger);
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
}
