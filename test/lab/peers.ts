import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** CI (`CI=true`) must run every peer test: a missing peer there is a failure, never a skip. */
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}

/**
 * True when every named program is installed. On a developer machine a missing peer lets the
 * caller skip (`describe.runIf(havePeers(...))`); in CI it throws, so the run fails loudly.
 */
export function havePeers(...commands: string[]): boolean {
  const missing = commands.filter((c) => !which(c));
  if (missing.length === 0) return true;
  if (inCI) throw new Error(`peer programs missing in CI: ${missing.join(', ')} (add them to .ci/apt-packages.txt)`);
  return false;
}

/** Network namespaces need root (CI runs as root); same CI rule as havePeers. */
export function canUseNetns(): boolean {
  const ok = process.getuid?.() === 0 && !!which('ip');
  if (!ok && inCI) throw new Error('network-namespace tests need root and iproute2 in CI');
  if (!ok) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    if (inCI) throw error;
    return false;
  }
}
