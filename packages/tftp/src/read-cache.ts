/**
 * The index of the FileSource's read cache (no I/O). Two levels:
 * - an inode entry (`dev:ino`) with the identity (inode, size, mtime, ctime) its bytes were read
 *   under: a stale identity means the file changed, and that inode is read again;
 * - the bytes (`CachedData`), shared by every inode found to hold them. A fleet whose Pis each own
 *   a copy of one boot tree (distinct inodes, same bytes) thus costs one copy in memory.
 * Sharing is decided by comparing bytes, never by metadata: a Pi that is root on its NFS root can
 * set any size and mtime on its files, and must not be able to pick what another Pi is served.
 * The budget counts each CachedData once; LRU order and eviction are per CachedData (evicting one
 * inode of shared bytes would free nothing). Bytes in use by a transfer are never evicted.
 */

/** Bytes in memory; never written once indexed (transfers and other inodes read them). */
export interface CachedData {
  readonly data: Buffer;
  /** Bodies handed out and not yet released. */
  refs: number;
  /** Inode keys filed under these bytes. */
  readonly inodes: Set<string>;
}

interface InodeEntry {
  readonly identity: string;
  readonly cached: CachedData;
}

export interface ReadCacheStats {
  /** Inodes indexed. */
  readonly files: number;
  /** Distinct byte buffers indexed (≤ files). */
  readonly buffers: number;
  /** Bytes of those buffers, each counted once. */
  readonly bytes: number;
}

export class ReadCache {
  private readonly inodes = new Map<string, InodeEntry>();
  /** LRU order: first = least recently used. */
  private readonly lru = new Set<CachedData>();
  private readonly bySize = new Map<number, CachedData[]>();
  private bytes = 0;
  /** Bytes of loads in progress that will need their own buffer. */
  private reserved = 0;

  constructor(readonly maxBytes: number) {}

  get stats(): ReadCacheStats {
    return { files: this.inodes.size, buffers: this.lru.size, bytes: this.bytes };
  }

  /** The bytes of an inode read under `identity`; an entry of another identity is dropped (the file changed). */
  lookup(key: string, identity: string): CachedData | undefined {
    const entry = this.inodes.get(key);
    if (!entry) return undefined;
    if (entry.identity === identity) return entry.cached;
    this.detach(key);
    return undefined;
  }

  /** Indexed buffers of `size` bytes: what a freshly read file of that size may equal. */
  sameSize(size: number): readonly CachedData[] {
    return this.bySize.get(size) ?? [];
  }

  /**
   * Reserves room for a buffer of `size` bytes being read (evicting unused buffers, oldest first).
   * False when it cannot fit now: the caller streams the file instead.
   */
  reserve(size: number): boolean {
    this.makeRoom(size);
    if (this.bytes + this.reserved + size > this.maxBytes) return false;
    this.reserved += size;
    return true;
  }

  unreserve(size: number): void {
    this.reserved -= size;
  }

  /**
   * Files an inode under `data`: under an indexed buffer with equal bytes when there is one (the
   * fresh buffer is then dropped), else under `data` itself. The caller has reserved room for
   * `data` (and unreserves it). Returns the bytes the inode now shares.
   */
  add(key: string, identity: string, data: Buffer): CachedData {
    const equal = this.sameSize(data.length).find((c) => c.data.equals(data));
    return this.attach(key, identity, equal ?? { data, refs: 0, inodes: new Set() });
  }

  /**
   * Files an inode under bytes the caller found equal to it. When those bytes were dropped from
   * the index meanwhile (evicted while the caller compared), they come back if room can be made;
   * undefined otherwise.
   */
  share(key: string, identity: string, cached: CachedData): CachedData | undefined {
    if (!this.lru.has(cached)) {
      this.makeRoom(cached.data.length);
      if (this.bytes + this.reserved + cached.data.length > this.maxBytes) return undefined;
    }
    return this.attach(key, identity, cached);
  }

  /** A transfer takes the bytes (they stay in memory until given back). */
  borrow(cached: CachedData): void {
    cached.refs++;
    if (this.lru.delete(cached)) this.lru.add(cached);
  }

  giveBack(cached: CachedData): void {
    cached.refs--;
    this.makeRoom(0);
  }

  /** Drops every buffer no transfer is using. */
  clear(): void {
    for (const cached of [...this.lru]) if (cached.refs === 0) this.drop(cached);
  }

  private attach(key: string, identity: string, cached: CachedData): CachedData {
    if (this.inodes.get(key)?.cached !== cached) this.detach(key);
    if (!this.lru.has(cached)) this.index(cached);
    cached.inodes.add(key);
    this.inodes.set(key, { identity, cached });
    return cached;
  }

  private index(cached: CachedData): void {
    this.makeRoom(cached.data.length);
    this.lru.add(cached);
    this.bytes += cached.data.length;
    const same = this.bySize.get(cached.data.length);
    if (same) same.push(cached);
    else this.bySize.set(cached.data.length, [cached]);
  }

  /** Forgets an inode; bytes no other inode shares leave the index (transfers holding them finish). */
  private detach(key: string): void {
    const entry = this.inodes.get(key);
    if (!entry) return;
    this.inodes.delete(key);
    entry.cached.inodes.delete(key);
    if (entry.cached.inodes.size === 0) this.drop(entry.cached);
  }

  /** Removes bytes and every inode filed under them from the index. */
  private drop(cached: CachedData): void {
    if (!this.lru.delete(cached)) return;
    this.bytes -= cached.data.length;
    for (const key of cached.inodes) if (this.inodes.get(key)?.cached === cached) this.inodes.delete(key);
    cached.inodes.clear();
    const same = this.bySize.get(cached.data.length) ?? [];
    const rest = same.filter((c) => c !== cached);
    if (rest.length > 0) this.bySize.set(cached.data.length, rest);
    else this.bySize.delete(cached.data.length);
  }

  /** Evicts unused buffers, least recently used first, until `incoming` more bytes fit. */
  private makeRoom(incoming: number): void {
    for (const cached of this.lru) {
      if (this.bytes + this.reserved + incoming <= this.maxBytes) return;
      if (cached.refs === 0) this.drop(cached);
    }
  }
}

/** At most `limit` holders at once; the others wait, first come first served. */
export class Slots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Resolves when a slot is free, with the function that gives it back (idempotent). */
  async take(): Promise<() => void> {
    if (this.busy < this.limit) this.busy++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let given = false;
    return () => {
      if (given) return;
      given = true;
      // Handed straight to the next waiter: busy stays as it is.
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    };
  }
}
