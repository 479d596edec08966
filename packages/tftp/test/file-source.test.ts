import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, utimesSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSource, TftpFileError, sanitizeTftpPath } from '../src/index.js';
import type { FileBody, OpenedFile } from '../src/index.js';

async function readAll(body: FileBody, step = 1468): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for (let offset = 0; offset < body.size; offset += step) parts.push(await body.read(offset, step));
  return Buffer.concat(parts);
}

async function openError(source: FileSource, name: string): Promise<TftpFileError> {
  try {
    const opened = await source.open(name);
    opened.body.release();
  } catch (error) {
    expect(error).toBeInstanceOf(TftpFileError);
    return error as TftpFileError;
  }
  throw new Error(`${name} opened although it should not`);
}

describe('sanitizeTftpPath', () => {
  it.each([
    ['start4.elf', ['start4.elf']],
    ['9ffefdef/start4.elf', ['9ffefdef', 'start4.elf']],
    ['/9ffefdef/config.txt', ['9ffefdef', 'config.txt']],
    ['a/./b', ['a', 'b']],
    ['a//b', ['a', 'b']],
    ['overlays\\vc4.dtbo', ['overlays', 'vc4.dtbo']],
    ['/etc/passwd', ['etc', 'passwd']],
  ])('%s → %j', (name, segments) => {
    expect(sanitizeTftpPath(name)).toEqual({ ok: true, segments });
  });

  it.each([
    ['../x', 'parent-segment'],
    ['a/../../x', 'parent-segment'],
    ['a/..', 'parent-segment'],
    ['..\\x', 'parent-segment'],
    ['a\u0000b', 'control-character'],
    ['a\nb', 'control-character'],
    ['', 'empty'],
    ['/', 'empty'],
    ['./.', 'empty'],
    ['x'.repeat(256), 'too-long'],
    ['a/'.repeat(600), 'too-long'],
  ])('%j is refused (%s)', (name, reason) => {
    expect(sanitizeTftpPath(name)).toEqual({ ok: false, reason });
  });
});

describe('FileSource', () => {
  let dir: string;
  let root: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tofu-fs-'));
    root = join(dir, 'tftpboot');
    mkdirSync(join(root, 'base', 'overlays'), { recursive: true });
    mkdirSync(join(root, '9ffefdef'), { recursive: true });
    mkdirSync(join(root, 'subdir'), { recursive: true });
    writeFileSync(join(root, 'bootcode.bin'), 'root bootcode');
    writeFileSync(join(root, 'base', 'start4.elf'), 'shared start4');
    writeFileSync(join(root, 'base', 'config.txt'), 'shared config');
    writeFileSync(join(root, 'base', 'overlays', 'vc4.dtbo'), 'overlay');
    writeFileSync(join(root, '9ffefdef', 'config.txt'), 'own config');
    writeFileSync(join(dir, 'secret'), 'outside');
    symlinkSync(join(dir, 'secret'), join(root, 'escape'));
    symlinkSync(join(root, 'bootcode.bin'), join(root, 'inside-link'));
    symlinkSync(dir, join(root, 'escape-dir'));
    execFileSync('mkfifo', [join(root, 'fifo')]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const text = async (opened: OpenedFile) => {
    const data = await readAll(opened.body);
    opened.body.release();
    return data.toString();
  };

  it('serves root files and the serial folder first', async () => {
    const source = new FileSource({ root, isRegistered: () => true });
    expect(await text(await source.open('bootcode.bin'))).toBe('root bootcode');
    const own = await source.open('9ffefdef/config.txt');
    expect(own).toMatchObject({ serial: '9ffefdef', origin: 'disk', path: '9ffefdef/config.txt' });
    expect(await text(own)).toBe('own config');
  });

  it('falls back to the shared folder only for registered serials', async () => {
    const registered = new FileSource({ root, isRegistered: (s) => s === '9ffefdef' || s === '0000abcd' });
    const shared = await registered.open('9ffefdef/start4.elf');
    expect(shared.origin).toBe('shared');
    expect(await text(shared)).toBe('shared start4');
    // a registered Pi with no folder of its own at all
    expect(await text(await registered.open('0000abcd/overlays/vc4.dtbo'))).toBe('overlay');
    expect((await openError(registered, '12345678/start4.elf')).reason).toBe('not-found');
    const nobody = new FileSource({ root });
    expect((await openError(nobody, '9ffefdef/start4.elf')).reason).toBe('not-found');
    const off = new FileSource({ root, sharedFolder: null, isRegistered: () => true });
    expect((await openError(off, '9ffefdef/start4.elf')).reason).toBe('not-found');
  });

  it('prefix fallback (off by default) maps <serial>/<file> to <root>/<file> for any serial', async () => {
    expect((await openError(new FileSource({ root }), '12345678/bootcode.bin')).reason).toBe('not-found');
    const source = new FileSource({ root, prefixFallback: true });
    const fallback = await source.open('12345678/bootcode.bin');
    expect(fallback).toMatchObject({ serial: '12345678', origin: 'disk' });
    expect(await text(fallback)).toBe('root bootcode');
    // the Pi's own file still wins, and the fallback never leaves the root
    expect(await text(await source.open('9ffefdef/config.txt'))).toBe('own config');
    expect((await openError(source, '12345678/../../secret')).reason).toBe('access-denied');
    expect((await openError(source, '12345678/escape')).reason).toBe('access-denied');
  });

  it('asks providers after the serial folder and before the shared folder', async () => {
    const seen: unknown[] = [];
    const source = new FileSource({
      root,
      isRegistered: () => true,
      providers: [
        (req) => {
          seen.push(req);
          return req.file === 'cmdline.txt' || req.file === 'config.txt' ? `generated for ${req.serial}` : undefined;
        },
      ],
    });
    const generated = await source.open('9ffefdef/cmdline.txt', { client: { address: '10.0.0.5', port: 1000 } });
    expect(generated.origin).toBe('provider');
    expect(await text(generated)).toBe('generated for 9ffefdef');
    expect(seen[0]).toEqual({
      path: '9ffefdef/cmdline.txt',
      file: 'cmdline.txt',
      serial: '9ffefdef',
      client: { address: '10.0.0.5', port: 1000 },
    });
    // the Pi's own file on disk wins over the provider
    expect(await text(await source.open('9ffefdef/config.txt'))).toBe('own config');
    expect(await text(await source.open('9ffefdef/start4.elf'))).toBe('shared start4');
  });

  it.each(['../secret', 'a/../../secret', '..\\secret', 'x\u0000y'])('refuses %j as access-denied', async (name) => {
    expect((await openError(new FileSource({ root }), name)).reason).toBe('access-denied');
  });

  it('keeps absolute paths inside the root', async () => {
    expect((await openError(new FileSource({ root }), '/etc/passwd')).reason).toBe('not-found');
    expect(await text(await new FileSource({ root }).open('/bootcode.bin'))).toBe('root bootcode');
  });

  it('refuses symlinks that leave the root, follows those that stay inside', async () => {
    const source = new FileSource({ root });
    expect((await openError(source, 'escape')).reason).toBe('access-denied');
    expect((await openError(source, 'escape-dir/secret')).reason).toBe('access-denied');
    expect(await text(await source.open('inside-link'))).toBe('root bootcode');
  });

  it("serves world-readable files only, like tftpd-hpa (a Pi's userconf.txt, mode 0600, stays on disk)", async () => {
    writeFileSync(join(root, '9ffefdef', 'userconf.txt'), 'pi:$6$salt$hash\n', { mode: 0o600 });
    chmodSync(join(root, '9ffefdef', 'userconf.txt'), 0o600);
    const source = new FileSource({ root });
    expect((await openError(source, '9ffefdef/userconf.txt')).reason).toBe('access-denied');
    chmodSync(join(root, '9ffefdef', 'userconf.txt'), 0o644);
    expect(await text(await source.open('9ffefdef/userconf.txt'))).toBe('pi:$6$salt$hash\n');
  });

  it('serves regular files only', async () => {
    const source = new FileSource({ root });
    expect((await openError(source, 'subdir')).reason).toBe('not-found');
    expect((await openError(source, 'fifo')).reason).toBe('not-found');
    expect((await openError(source, 'missing.bin')).reason).toBe('not-found');
    expect((await openError(source, 'bootcode.bin/x')).reason).toBe('not-found');
  });

  it('reads a hot file once and shares it between concurrent opens', async () => {
    const source = new FileSource({ root });
    const opened = await Promise.all(Array.from({ length: 10 }, () => source.open('base/config.txt')));
    expect(source.stats).toMatchObject({ misses: 1, hits: 0, cachedFiles: 1 });
    const again = await source.open('base/config.txt');
    expect(source.stats.hits).toBe(1);
    for (const o of [...opened, again]) expect(await text(o)).toBe('shared config');
  });

  it('shares one cache entry between hard links of one file (per-serial folders of one boot tree)', async () => {
    const kernel = Buffer.alloc(50_000, 9);
    writeFileSync(join(root, 'base', 'kernel8.img'), kernel);
    const serials = ['1000000a', '1000000b', '1000000c'];
    for (const serial of serials) {
      mkdirSync(join(root, serial), { recursive: true });
      linkSync(join(root, 'base', 'kernel8.img'), join(root, serial, 'kernel8.img'));
    }
    const source = new FileSource({ root, cacheMaxBytes: 120_000 });
    const opened = await Promise.all(serials.map((serial) => source.open(`${serial}/kernel8.img`)));
    // one copy in memory for three names, none of them streamed although 3 copies would not fit
    expect(source.stats).toMatchObject({ misses: 1, hits: 0, cachedFiles: 1, cachedBytes: 50_000, streamed: 0 });
    expect(opened.map((o) => o.path)).toEqual(serials.map((serial) => `${serial}/kernel8.img`));
    for (const o of opened) expect(Buffer.compare(await readAll(o.body), kernel)).toBe(0);
    for (const o of opened) o.body.release();
    await source.open('base/kernel8.img').then((o) => o.body.release());
    expect(source.stats).toMatchObject({ hits: 1, cachedFiles: 1 });
  });

  it('reloads a file that changed on disk; running transfers keep their bytes', async () => {
    const file = join(root, 'changing.txt');
    writeFileSync(file, 'version one');
    const source = new FileSource({ root });
    const first = await source.open('changing.txt');
    writeFileSync(file, 'version two, longer');
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const second = await source.open('changing.txt');
    expect(await text(second)).toBe('version two, longer');
    expect(await text(first)).toBe('version one');
    expect(source.stats.misses).toBe(2);
  });

  it('keeps the cache within its byte budget and streams what does not fit', async () => {
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 8)) & 0xff;
    writeFileSync(join(root, 'big.bin'), big);
    writeFileSync(join(root, 'small1.bin'), Buffer.alloc(40_000, 1));
    writeFileSync(join(root, 'small2.bin'), Buffer.alloc(40_000, 2));
    const source = new FileSource({ root, cacheMaxBytes: 100_000, chunkBytes: 8192 });
    const streamed = await source.open('big.bin', { blksize: 1468 });
    expect(source.stats.streamed).toBe(1);
    expect(Buffer.compare(await readAll(streamed.body), big)).toBe(0);
    // random access for retransmissions, including reads across chunk boundaries
    expect(Buffer.from(await streamed.body.read(8190, 10))).toEqual(big.subarray(8190, 8200));
    expect(Buffer.from(await streamed.body.read(299_995, 100))).toEqual(big.subarray(299_995));
    streamed.body.release();
    streamed.body.release();

    const a = await source.open('small1.bin');
    const b = await source.open('small2.bin');
    expect(source.stats.cachedBytes).toBe(80_000);
    writeFileSync(join(root, 'small3.bin'), Buffer.alloc(40_000, 3));
    // both cached files are in use: the third cannot be cached and streams instead
    const c = await source.open('small3.bin');
    expect(source.stats.cachedBytes).toBeLessThanOrEqual(100_000);
    expect(source.stats.streamed).toBe(2);
    expect((await readAll(c.body)).every((x) => x === 3)).toBe(true);
    a.body.release();
    b.body.release();
    c.body.release();
    // now the least recently used unused entry makes room
    const d = await source.open('small3.bin');
    expect(source.stats.cachedBytes).toBeLessThanOrEqual(100_000);
    expect(source.stats.cachedFiles).toBe(2);
    d.body.release();
  });

  it('keeps the budget when different files load in parallel', async () => {
    for (const n of [4, 5, 6]) writeFileSync(join(root, `par${n}.bin`), Buffer.alloc(40_000, n));
    const source = new FileSource({ root, cacheMaxBytes: 100_000 });
    const opened = await Promise.all([4, 5, 6].map((n) => source.open(`par${n}.bin`)));
    expect(source.stats.cachedBytes).toBeLessThanOrEqual(100_000);
    expect(source.stats.streamed).toBe(1);
    for (const [i, o] of opened.entries()) {
      expect((await readAll(o.body)).every((x) => x === i + 4)).toBe(true);
      o.body.release();
    }
  });

  it('checkRoot gives a clear error for an unusable root', async () => {
    await expect(new FileSource({ root: join(dir, 'nope') }).checkRoot()).rejects.toThrow(/not usable/);
    await expect(new FileSource({ root: join(root, 'bootcode.bin') }).checkRoot()).rejects.toThrow(/not a directory/);
    await expect(new FileSource({ root }).checkRoot()).resolves.toBeUndefined();
  });
});
