import type { FileHandle } from 'node:fs/promises';
import { TftpFileError } from './file-error.js';
import type { FileBody } from './file-body.js';

/** A file too big for the cache: read in aligned chunks, the next chunk prefetched. */
export class StreamedBody implements FileBody {
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
