import { join } from 'node:path';
import type { CommandRunner } from '@iot-tofu/host-io';
import { FleetError } from './errors.js';
import { usedBytes } from './fs-util.js';

/** `cp -a --reflink=auto src/. dest`: keeps owners, modes, links, device nodes and xattrs. */
export async function copyTree(runner: CommandRunner, source: string, dest: string): Promise<void> {
  try {
    await runner('cp', ['-a', '--reflink=auto', '--', `${source}/.`, dest]);
  } catch (error) {
    throw new FleetError('COPY_FAILED', `copying ${source} to ${dest} failed: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * copyTree plus progress: cp gives none, so progress is the growth of the target filesystem's
 * used space against the base's known size (with reflink it jumps to the end at once).
 */
export async function copyTreeWithProgress(
  runner: CommandRunner,
  source: string,
  dest: string,
  expectedBytes: number,
  onProgress?: (p: { phase: 'copy'; done: number; total: number }) => void,
): Promise<void> {
  if (!onProgress) return copyTree(runner, source, dest);
  const start = await usedBytes(join(dest, '..'));
  const timer = setInterval(() => {
    void usedBytes(join(dest, '..'))
      .then((used) => onProgress({ phase: 'copy', done: Math.min(expectedBytes, Math.max(0, used - start)), total: expectedBytes }))
      .catch(() => undefined);
  }, 250);
  try {
    await copyTree(runner, source, dest);
    onProgress({ phase: 'copy', done: expectedBytes, total: expectedBytes });
  } finally {
    clearInterval(timer);
  }
}
