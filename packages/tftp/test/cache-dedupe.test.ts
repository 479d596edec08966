import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSource } from '../src/index.js';
import type { FileBody, OpenedFile } from '../src/index.js';
import { ReadCache, Slots } from '../src/read-cache.js';

/** Bytes that differ from position to position (a fill would hide offset mistakes). */
function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 17 + (i >> 9)) & 0xff;
  return out;
}

async function readAll(body: FileBody, step = 1468): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for (let offset = 0; offset < body.size; offset += step) parts.push(await body.read(offset, step));
  return Buffer.concat(parts);
}

describe('ReadCache (index only)', () => {
  it.each([
    ['equal bytes under two inodes', pattern(1000, 1), pattern(1000, 1), 1, 1000],
    ['different bytes, same size', pattern(1000, 1), pattern(1000, 2), 2, 2000],
    ['different sizes', pattern(1000, 1), pattern(999, 1), 2, 1999],
    ['two empty files', Buffer.alloc(0), Buffer.alloc(0), 1, 0],
  ])('%s', (_name, a, b, buffers, bytes) => {
    const cache = new ReadCache(10_000);
    cache.add('1:1', 'id-a', a);
    cache.add('1:2', 'id-b', b);
    expect(cache.stats).toEqual({ files: 2, buffers, bytes });
    expect(cache.lookup('1:1', 'id-a')?.data.equals(a)).toBe(true);
    expect(cache.lookup('1:2', 'id-b')?.data.equals(b)).toBe(true);
  });

  it('a stale identity drops that inode only; bytes leave with their last inode', () => {
    const cache = new ReadCache(10_000);
    const shared = cache.add('1:1', 'a', pattern(1000, 1));
    expect(cache.add('1:2', 'b', pattern(1000, 1))).toBe(shared);
    expect(cache.lookup('1:1', 'a-changed')).toBeUndefined();
    expect(cache.stats).toEqual({ files: 1, buffers: 1, bytes: 1000 });
    expect(cache.lookup('1:2', 'b')).toBe(shared);
    expect(cache.lookup('1:2', 'b-changed')).toBeUndefined();
    expect(cache.stats).toEqual({ files: 0, buffers: 0, bytes: 0 });
    expect(cache.sameSize(1000)).toEqual([]);
  });

  it('evicts shared bytes as one unit, least recently used first, never while borrowed', () => {
    const cache = new ReadCache(2500);
    const k = cache.add('1:1', 'a', pattern(1000, 1));
    cache.add('1:2', 'b', pattern(1000, 1));
    const other = cache.add('1:3', 'c', pattern(1000, 2));
    cache.borrow(k); // k is now the most recently used, and in use
    expect(cache.reserve(1000)).toBe(true); // other (unused, oldest) goes
    cache.unreserve(1000);
    expect(cache.lookup('1:3', 'c')).toBeUndefined();
    expect(cache.stats).toEqual({ files: 2, buffers: 1, bytes: 1000 });
    expect(other.inodes.size).toBe(0);
    expect(cache.reserve(2000)).toBe(false); // k is borrowed: it stays
    cache.giveBack(k);
    expect(cache.reserve(2000)).toBe(true); // both inodes of k leave together
    expect(cache.stats).toEqual({ files: 0, buffers: 0, bytes: 0 });
  });

  it('share re-indexes bytes evicted while a load compared against them, if they fit', () => {
    const cache = new ReadCache(1500);
    const k = cache.add('1:1', 'a', pattern(1000, 1));
    cache.clear();
    expect(cache.stats.buffers).toBe(0);
    expect(cache.share('1:2', 'b', k)).toBe(k);
    expect(cache.stats).toEqual({ files: 1, buffers: 1, bytes: 1000 });
    cache.borrow(k);
    const busy = cache.add('1:3', 'c', pattern(400, 3));
    cache.borrow(busy);
    expect(cache.lookup('1:2', 'b-changed')).toBeUndefined(); // k leaves the index, still borrowed
    expect(cache.reserve(1000)).toBe(true);
    expect(cache.share('1:4', 'd', k)).toBeUndefined(); // 400 in use + 1000 reserved: no room for k
    cache.unreserve(1000);
    expect(cache.lookup('1:3', 'c')).toBe(busy);
    expect(cache.share('1:4', 'd', k)).toBe(k);
    expect(cache.stats).toEqual({ files: 2, buffers: 2, bytes: 1400 });
  });
});

describe('Slots (how many loads compare at once)', () => {
  it('lets `limit` holders in, the next ones in arrival order as slots are given back', async () => {
    const slots = new Slots(2);
    const order: number[] = [];
    const frees = await Promise.all([slots.take(), slots.take()]);
    const later = [3, 4].map((n) =>
      slots.take().then((free) => {
        order.push(n);
        return free;
      }),
    );
    await Promise.resolve();
    expect(order).toEqual([]);
    frees[0]!();
    frees[0]!(); // giving back twice frees one slot only
    const third = await later[0]!;
    expect(order).toEqual([3]);
    frees[1]!();
    const fourth = await later[1]!;
    expect(order).toEqual([3, 4]);
    third();
    fourth();
    // all free again: two at once without waiting
    const again = await Promise.all([slots.take(), slots.take()]);
    for (const free of again) free();
  });
});

describe('FileSource: identical copies share one cache buffer', () => {
  let dir: string;
  const open = (source: FileSource, name: string) => source.open(name);
  const releaseAll = (opened: readonly OpenedFile[]) => {
    for (const o of opened) o.body.release();
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tftp-dedupe-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** One folder per serial, each with its own copy (own inode) of `files`. */
  function copies(serials: readonly string[], files: Record<string, Buffer>): void {
    for (const serial of serials) {
      mkdirSync(join(dir, serial), { recursive: true });
      for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, serial, name), data);
    }
  }

  it('two copies of one file cost one buffer; cachedBytes counts it once', async () => {
    const kernel = pattern(3 * 1024 * 1024 + 123, 7); // several compare chunks, a ragged tail
    copies(['1000000a', '1000000b'], { 'kernel8.img': kernel });
    const source = new FileSource({ root: dir });
    const a = await open(source, '1000000a/kernel8.img');
    const b = await open(source, '1000000b/kernel8.img');
    expect(source.stats).toMatchObject({ cachedFiles: 2, cachedBuffers: 1, cachedBytes: kernel.length, misses: 2, shared: 1, streamed: 0 });
    expect(b.body.shared?.buffer).toBe(a.body.shared?.buffer);
    expect((await readAll(b.body)).equals(kernel)).toBe(true);
    releaseAll([a, b]);
    await open(source, '1000000b/kernel8.img').then((o) => o.body.release());
    expect(source.stats).toMatchObject({ hits: 1, misses: 2 });
  });

  it('60 copies fit a budget that holds one: none streams', async () => {
    const serials = Array.from({ length: 60 }, (_, i) => (0x10000000 + i).toString(16));
    const initramfs = pattern(200_000, 3);
    copies(serials, { initramfs8: initramfs });
    const source = new FileSource({ root: dir, cacheMaxBytes: 250_000 });
    const opened: OpenedFile[] = [];
    for (const serial of serials) opened.push(await open(source, `${serial}/initramfs8`));
    expect(source.stats).toMatchObject({ cachedFiles: 60, cachedBuffers: 1, cachedBytes: 200_000, streamed: 0, shared: 59 });
    releaseAll(opened);
  });

  it.each([
    ['first byte', 0],
    ['inside a later compare chunk', 2 * 1024 * 1024 + 5],
    ['last byte', 3 * 1024 * 1024 - 1],
  ])('a copy that differs at its %s gets its own bytes', async (_where, at) => {
    const original = pattern(3 * 1024 * 1024, 1);
    const changed = Buffer.from(original);
    changed[at] = changed[at]! ^ 0xff;
    copies(['1000000a'], { 'kernel8.img': original });
    copies(['1000000b'], { 'kernel8.img': changed });
    const source = new FileSource({ root: dir });
    const a = await open(source, '1000000a/kernel8.img');
    const b = await open(source, '1000000b/kernel8.img');
    expect(source.stats).toMatchObject({ cachedFiles: 2, cachedBuffers: 2, cachedBytes: 2 * original.length, shared: 0 });
    expect((await readAll(a.body)).equals(original)).toBe(true);
    expect((await readAll(b.body)).equals(changed)).toBe(true);
    releaseAll([a, b]);
  });

  it('a Pi that rewrites its copy gets its new bytes next time; the other keeps the shared ones', async () => {
    const kernel = pattern(100_000, 1);
    copies(['1000000a', '1000000b'], { 'kernel8.img': kernel });
    const source = new FileSource({ root: dir });
    const before = await Promise.all(['1000000a', '1000000b'].map((s) => open(source, `${s}/kernel8.img`)));
    const rewritten = pattern(100_000, 2); // same size
    const file = join(dir, '1000000b', 'kernel8.img');
    writeFileSync(file, rewritten);
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const after = await open(source, '1000000b/kernel8.img');
    expect((await readAll(after.body)).equals(rewritten)).toBe(true);
    // the transfer that started before the rewrite finishes with the bytes it started with
    expect((await readAll(before[1]!.body)).equals(kernel)).toBe(true);
    const other = await open(source, '1000000a/kernel8.img');
    expect((await readAll(other.body)).equals(kernel)).toBe(true);
    expect(source.stats).toMatchObject({ cachedFiles: 2, cachedBuffers: 2, cachedBytes: 200_000 });
    // rewritten back to the original bytes: shares again
    writeFileSync(file, kernel);
    utimesSync(file, new Date(), new Date(Date.now() + 10_000));
    const back = await open(source, '1000000b/kernel8.img');
    expect(back.body.shared?.buffer).toBe(other.body.shared?.buffer);
    expect(source.stats).toMatchObject({ cachedFiles: 2, cachedBuffers: 1, cachedBytes: 100_000 });
    releaseAll([...before, after, other, back]);
  });

  it('metadata alone never shares: same size and mtime, different bytes', async () => {
    copies(['1000000a'], { 'kernel8.img': pattern(50_000, 1) });
    copies(['1000000b'], { 'kernel8.img': pattern(50_000, 9) });
    const when = new Date('2026-01-01T00:00:00Z');
    for (const s of ['1000000a', '1000000b']) utimesSync(join(dir, s, 'kernel8.img'), when, when);
    const source = new FileSource({ root: dir });
    const a = await open(source, '1000000a/kernel8.img');
    const b = await open(source, '1000000b/kernel8.img');
    expect((await readAll(b.body)).equals(pattern(50_000, 9))).toBe(true);
    expect(source.stats.cachedBuffers).toBe(2);
    releaseAll([a, b]);
  });

  it('loads of several copies at once read into one buffer', async () => {
    const serials = ['1000000a', '1000000b', '1000000c', '1000000d'];
    const kernel = pattern(2 * 1024 * 1024 + 7, 5);
    copies(serials, { 'kernel8.img': kernel, 'start4.elf': pattern(300_000, 6) });
    // Room for one copy of each file only: without sharing, later copies would stream.
    const source = new FileSource({ root: dir, cacheMaxBytes: kernel.length + 300_000 + 1000 });
    const opened = await Promise.all(serials.flatMap((s) => [open(source, `${s}/kernel8.img`), open(source, `${s}/start4.elf`)]));
    expect(source.stats).toMatchObject({
      cachedFiles: 8,
      cachedBuffers: 2,
      cachedBytes: kernel.length + 300_000,
      streamed: 0,
      misses: 8,
      shared: 6,
    });
    for (const [i, o] of opened.entries()) {
      expect((await readAll(o.body)).equals(i % 2 === 0 ? kernel : pattern(300_000, 6))).toBe(true);
    }
    releaseAll(opened);
  });

  it('eviction frees shared bytes once every copy is released, and only then', async () => {
    const serials = ['1000000a', '1000000b'];
    copies(serials, { 'kernel8.img': pattern(60_000, 1) });
    writeFileSync(join(dir, 'other.bin'), pattern(60_000, 2));
    const source = new FileSource({ root: dir, cacheMaxBytes: 100_000 });
    const [a, b] = await Promise.all(serials.map((s) => open(source, `${s}/kernel8.img`)));
    a!.body.release();
    // b still reads the shared kernel: other.bin cannot take its place and streams
    const streamed = await open(source, 'other.bin');
    expect(source.stats).toMatchObject({ streamed: 1, cachedBuffers: 1, cachedFiles: 2 });
    streamed.body.release();
    b!.body.release();
    const cached = await open(source, 'other.bin');
    expect(source.stats).toMatchObject({ streamed: 1, cachedBuffers: 1, cachedFiles: 1, cachedBytes: 60_000 });
    expect((await readAll(cached.body)).equals(pattern(60_000, 2))).toBe(true);
    cached.body.release();
  });
});
