import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { IotTofuError } from '@iot-tofu/errors';

/** The lock is held by a live process past the wait allowed; `code` is the caller's (default LOCKED). */
export class LockBusyError extends IotTofuError {
  readonly path: string;
  /** The holder's PID, when the lock file names one. */
  readonly owner: number | undefined;

  constructor(code: string, message: string, path: string, owner: number | undefined) {
    super(code, message);
    this.path = path;
    this.owner = owner;
  }
}

/** Whether a process with this PID exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The start time of a process (clock ticks since boot, /proc/<pid>/stat field 22), or null off Linux. */
export async function processStartTime(pid: number): Promise<string | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (text === null) return null;
  // The command name (field 2) may hold blanks and parentheses: count fields after its last ')'.
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
}

/** What a lock file says about its owner: `pid start-time` (start time guards against PID reuse). */
export function parseLockOwner(text: string): { pid: number; start: string | null } | null {
  const [pidText, start] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  return Number.isInteger(pid) && pid > 0 ? { pid, start: start ?? null } : null;
}

/**
 * A lock file that is never empty or half-written: the owner line is written and synced to a
 * private temp file first, then hard-linked into place (atomic, fails if the lock is held).
 */
async function tryCreate(path: string, content: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(temp, { force: true });
  }
}

/** How long an unreadable lock (empty or garbled: left by an older release) may live before it counts as stale. */
const UNREADABLE_GRACE_MS = 5_000;

/** Whether the lock at `path` belongs to nobody alive; also returns its inode to break it safely. */
async function staleLock(path: string): Promise<{ stale: boolean; ino?: number; owner?: number }> {
  const info = await stat(path).catch(() => null);
  if (!info) return { stale: false };
  const owner = parseLockOwner(await readFile(path, 'utf8').catch(() => ''));
  if (!owner) return { stale: Date.now() - info.mtimeMs > UNREADABLE_GRACE_MS, ino: info.ino };
  if (!processAlive(owner.pid)) return { stale: true, ino: info.ino, owner: owner.pid };
  // The PID lives, but is it still the owner? A reused PID has another start time.
  const start = owner.start === null ? null : await processStartTime(owner.pid);
  return { stale: owner.start !== null && start !== null && start !== owner.start, ino: info.ino, owner: owner.pid };
}

/**
 * Breaks a stale lock: the lock is renamed aside and kept away only if it is the very file judged
 * stale (same inode); a lock taken meanwhile is put back. One window remains, and only when three
 * processes meet a dead owner's lock at once: if a second breaker has already replaced the stale
 * lock with its own and a third process takes the path in the instant between our rename and the
 * link back, the second one's lock is lost and two processes hold it. Closing it needs a lock
 * primitive that dies with its holder (flock), which Node does not offer without an addon.
 */
async function breakLock(path: string, ino: number): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const moved = await stat(aside).catch(() => null);
  if (moved && moved.ino !== ino) await link(aside, path).catch(() => undefined);
  await rm(aside, { force: true });
}

export interface LockOptions {
  /** How long to wait for a live holder; 0 = fail at once. */
  timeoutMs: number;
  /** What the lock guards, for the error message ("the registry", "Pi 9f55bbfd"). */
  what: string;
  /** The error code when the lock stays busy (the caller's vocabulary); default LOCKED. */
  code?: string;
}

/**
 * A lock file holding the owner's PID and start time. A lock whose owner died (or whose PID now
 * belongs to another process) is taken over, so a killed CLI never blocks the fleet; the file is
 * never empty, so a kill at any point leaves either no lock or a complete one. Works across
 * processes on one machine (the CLI and the daemon), which is all the registry needs.
 */
export async function acquireLock(path: string, options: LockOptions): Promise<() => Promise<void>> {
  const deadline = Date.now() + options.timeoutMs;
  const me = `${process.pid} ${(await processStartTime(process.pid)) ?? ''}`.trim();
  for (;;) {
    if (await tryCreate(path, `${me}\n`)) {
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await rm(path, { force: true });
      };
    }
    const judged = await staleLock(path);
    if (judged.stale && judged.ino !== undefined) {
      await breakLock(path, judged.ino);
      continue;
    }
    if (Date.now() >= deadline) {
      const message = `${options.what} is busy (locked by process ${judged.owner ?? '?'}: ${path})`;
      throw new LockBusyError(options.code ?? 'LOCKED', message, path, judged.owner);
    }
    await sleep(25);
  }
}
