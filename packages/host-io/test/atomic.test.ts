import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../src/atomic.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-atomic-'));
  dirs.push(dir);
  return dir;
};

describe('writeFileAtomic', () => {
  it('replaces the content whole, with the mode asked for (not the umask), and leaves no temp file', async () => {
    const dir = tempDir();
    const path = join(dir, 'registry.json');
    writeFileSync(path, 'old');
    await writeFileAtomic(path, 'new content\n', 0o600);
    expect(readFileSync(path, 'utf8')).toBe('new content\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['registry.json']);
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    expect(statSync(path).mode & 0o777).toBe(0o644);
  });

  it('a missing folder is an error unless createDir asks for it', async () => {
    const dir = tempDir();
    const path = join(dir, 'a', 'b', 'unit.service');
    await expect(writeFileAtomic(path, 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    await writeFileAtomic(path, 'x', 0o644, { createDir: true });
    expect(readFileSync(path, 'utf8')).toBe('x');
  });

  it('a failed rename keeps the old file and removes the temp file', async () => {
    const dir = tempDir();
    // The target is a non-empty folder: rename(file, dir) fails with EISDIR, after the temp file was written.
    const path = join(dir, 'target');
    mkdirSync(path);
    writeFileSync(join(path, 'inside'), 'keep');
    await expect(writeFileAtomic(path, 'new')).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/) });
    expect(readdirSync(dir)).toEqual(['target']);
    expect(readFileSync(join(path, 'inside'), 'utf8')).toBe('keep');
  });

  it('a failed write (data of the wrong type) removes the temp file', async () => {
    const dir = tempDir();
    const path = join(dir, 'leases.json');
    writeFileSync(path, 'old');
    await expect(writeFileAtomic(path, 42 as unknown as string)).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['leases.json']);
    expect(readFileSync(path, 'utf8')).toBe('old');
  });
});
