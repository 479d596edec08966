import { open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { FleetError } from './errors.js';

/** Whether a process with this PID exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A lock file holding the owner's PID, created with O_EXCL. A lock whose owner died is taken
 * over, so a killed CLI never blocks the fleet. Works across processes on one machine (the CLI
 * and the daemon), which is all the registry needs.
 */
export async function acquireLock(path: string, options: { timeoutMs: number; what: string; code?: 'PI_BUSY' | 'LOCKED' }): Promise<() => Promise<void>> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && !processAlive(owner)) {
      await rm(path, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw new FleetError(options.code ?? (options.timeoutMs === 0 ? 'PI_BUSY' : 'LOCKED'), `${options.what} is busy (locked by process ${Number.isNaN(owner) ? '?' : owner}: ${path})`);
    }
    await sleep(25);
  }
}
