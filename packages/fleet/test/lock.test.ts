import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, parseLockOwner, processStartTime } from '../src/lock.js';
import { tempDir } from './helpers.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});
const lockIn = () => {
  const dir = tempDir('lock');
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

describe('fleet locks survive kills at any point (issue 19 item 1)', () => {
  it('holds pid and start time, never an empty file, and leaves no temp file behind', async () => {
    const path = lockIn();
    const release = await acquireLock(path, { timeoutMs: 0, what: 'test' });
    const owner = parseLockOwner(readFileSync(path, 'utf8'));
    expect(owner).toEqual({ pid: process.pid, start: await processStartTime(process.pid) });
    await expect(acquireLock(path, { timeoutMs: 0, what: 'Pi x' })).rejects.toMatchObject({ code: 'PI_BUSY', message: expect.stringContaining(`process ${process.pid}`) });
    await release();
    expect(readdirSync(join(path, '..'))).toEqual([]);
  });

  it.each([
    ['an empty lock left by a kill between create and write (older releases)', ''],
    ['a garbled lock', 'not a pid\n'],
  ])('%s is taken over once it is a few seconds old', async (_name, content) => {
    const path = lockIn();
    writeFileSync(path, content);
    await expect(acquireLock(path, { timeoutMs: 0, what: 'Pi x' })).rejects.toMatchObject({ code: 'PI_BUSY' });
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
});
