import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, LockBusyError, parseLockOwner, processAlive, processStartTime } from '../src/lock.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});
const lockIn = () => {
  const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-lock-'));
  dirs.push(dir);
  return join(dir, 'registry.lock');
};
const old = (path: string) => utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));

/** A PID that is surely dead: a child that already exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('lock files survive kills at any point (issue 19 item 1)', () => {
  it('holds pid and start time, never an empty file, and leaves no temp file behind', async () => {
    const path = lockIn();
    const release = await acquireLock(path, { timeoutMs: 0, what: 'test' });
    const owner = parseLockOwner(readFileSync(path, 'utf8'));
    expect(owner).toEqual({ pid: process.pid, start: await processStartTime(process.pid) });
    const busy = acquireLock(path, { timeoutMs: 0, what: 'Pi x', code: 'PI_BUSY' });
    await expect(busy).rejects.toBeInstanceOf(LockBusyError);
    await expect(busy).rejects.toMatchObject({
      code: 'PI_BUSY',
      owner: process.pid,
      path,
      message: expect.stringContaining(`process ${process.pid}`),
    });
    await release();
    expect(readdirSync(join(path, '..'))).toEqual([]);
  });

  it.each([
    ['an empty lock left by a kill between create and write (older releases)', ''],
    ['a garbled lock', 'not a pid\n'],
  ])('%s is taken over once it is a few seconds old', async (_name, content) => {
    const path = lockIn();
    writeFileSync(path, content);
    await expect(acquireLock(path, { timeoutMs: 0, what: 'Pi x' })).rejects.toMatchObject({ code: 'LOCKED' });
    old(path);
    const release = await acquireLock(path, { timeoutMs: 0, what: 'Pi x' });
    expect(parseLockOwner(readFileSync(path, 'utf8'))?.pid).toBe(process.pid);
    await release();
  });

  it('a dead owner and a reused PID (other start time) are stale; a live owner is not', async () => {
    const path = lockIn();
    writeFileSync(path, `${await deadPid()} 12345\n`);
    await (await acquireLock(path, { timeoutMs: 0, what: 'x' }))();
    writeFileSync(path, `${process.pid} 1\n`); // this PID, but a process that started at tick 1: reused
    await (await acquireLock(path, { timeoutMs: 0, what: 'x' }))();
    writeFileSync(path, `${process.ppid} ${(await processStartTime(process.ppid)) ?? ''}\n`);
    await expect(acquireLock(path, { timeoutMs: 50, what: 'the registry' })).rejects.toMatchObject({ code: 'LOCKED' });
  });

  it('many waiters on a stale lock: exactly one holds it at a time', async () => {
    const path = lockIn();
    writeFileSync(path, `${await deadPid()}\n`);
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const release = await acquireLock(path, { timeoutMs: 10_000, what: 'x' });
        inside++;
        most = Math.max(most, inside);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inside--;
        await release();
      }),
    );
    expect(most).toBe(1);
  });

  it('a lock is never empty: a reader in another process racing take/release never sees an empty or partial file', async () => {
    const path = lockIn();
    // The reader polls the lock path until told to stop (or 20 s), counting what it finds.
    const reader = spawn(process.execPath, [
      '-e',
      `
      const { readFileSync, existsSync } = require('node:fs');
      const [path, stop] = process.argv.slice(1);
      const counts = { empty: 0, bad: [], full: 0 };
      const until = Date.now() + 20000;
      while (!existsSync(stop) && Date.now() < until) {
        let text = null;
        try { text = readFileSync(path, 'utf8'); } catch {}
        if (text === '') counts.empty++;
        else if (text !== null) {
          if (/^[0-9]+( [0-9]+)?\\n$/.test(text)) { if (counts.full++ === 0) process.stderr.write('seen'); }
          else if (counts.bad.length < 5) counts.bad.push(text);
        }
      }
      process.stdout.write(JSON.stringify(counts));
    `,
      path,
      `${path}.stop`,
    ]);
    let out = '';
    reader.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    let seen = false;
    let errors = '';
    reader.stderr.on('data', (chunk: Buffer) => {
      seen = true;
      errors += chunk.toString();
    });
    const exited = new Promise((resolve) => reader.once('close', resolve));
    for (let round = 0; round < 200; round++) await (await acquireLock(path, { timeoutMs: 1_000, what: 'x' }))();
    // Hold one lock until the reader has seen it at least once, so the counts say something.
    const release = await acquireLock(path, { timeoutMs: 1_000, what: 'x' });
    for (let wait = 0; !seen && wait < 400; wait++) await new Promise((resolve) => setTimeout(resolve, 25));
    await release();
    writeFileSync(`${path}.stop`, '');
    await exited;
    expect(errors.replace('seen', '')).toBe('');
    const counts = JSON.parse(out) as { empty: number; bad: string[]; full: number };
    expect(counts).toMatchObject({ empty: 0, bad: [] });
    expect(counts.full).toBeGreaterThan(0);
    await rm(`${path}.stop`);
    expect(readdirSync(join(path, '..'))).toEqual([]);
  });

  it('processAlive: this process lives, an exited child does not', async () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(await deadPid())).toBe(false);
  });
});
