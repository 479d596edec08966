/** What a transfer reads a file through, and the body over bytes already in memory. */
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
