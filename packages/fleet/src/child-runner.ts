import { accessSync, constants } from 'node:fs';
import type { CommandRunner } from '@iot-tofu/nfs-server-lite';

/** util-linux's setpriv, where this machine has it (Debian and Pi OS do). */
export function findSetpriv(candidates = ['/usr/bin/setpriv', '/bin/setpriv']): string | undefined {
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Runs every command with the parent-death signal set (`setpriv --pdeathsig KILL`): when pxetools
 * or the daemon is killed (an operator's kill -9, the OOM killer), the kernel kills its `cp -a`
 * too, instead of leaving it writing into a temp tree the next verb wants to sweep. Without
 * setpriv the commands run as they are.
 */
export function childrenDieWithUs(runner: CommandRunner, setpriv = findSetpriv()): CommandRunner {
  if (!setpriv) return runner;
  return (file, args, options) => runner(setpriv, ['--pdeathsig', 'KILL', '--', file, ...args], options);
}
