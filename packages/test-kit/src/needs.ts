// What a test needs beyond Node, declared in one place.
//
//   import { needs } from '@iot-tofu/test-kit';
//   describe('real exportfs', needs('root', 'exportfs'), () => { ... });
//   describe('lab', { timeout: 120_000, ...needs('netns', 'dnsmasq') }, () => { ... });
//   it('OVMF boots', needs('qemu-system-x86_64', '/usr/share/ovmf/OVMF.fd'), async () => { ... });
//   describe.each(table)('x $a', needs('curl'), (row) => { ... });
//
// A need is 'root', 'netns' (root + iproute2 + a namespace can be made), 'xattr' (the temp dir
// takes user.* extended attributes, with setfattr/getfattr), 'exports.d' (a writable
// /etc/exports.d), an absolute path (a file that must exist, e.g. firmware), or a program name
// (looked up in PATH, /usr/sbin and /sbin). Each need is probed once per process and cached.
//
// needs() returns vitest test options. Outside CI an unmet need skips the suite or test, and the
// reason lands in its meta; the root reporter (test/needs-reporter.ts) prints one block at the end
// of the run: how many tests were skipped for what, and the command that installs the programs.
// In CI (CI=true or 1) nothing is skipped: the tests run and the setup file test/needs-setup.ts
// fails each of them with the unmet need as the error.
//
// needs.met(...) answers the same question as a boolean, for a bench or a helper; it never skips.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';

/** CI (`CI=true`) must run every test: an unmet need there is a failure, never a skip. */
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export type Need = 'root' | 'netns' | 'xattr' | 'exports.d' | (string & {});

/** What needs() puts in the options it returns (suites pass their meta on to their tests). */
export interface NeedsMeta {
  /** Outside CI: the unmet needs that skipped this test, one reason each. */
  needsSkipped?: string[];
  /** In CI: the unmet needs that must fail this test, one reason each. */
  needsUnmet?: string[];
}

declare module 'vitest' {
  interface TaskMeta extends NeedsMeta {}
}

/** The command that installs every program the tests use (printed with the skip summary). */
export const installCommand = "sudo apt-get install --no-install-recommends $(grep -v '^\\s*#' .ci/apt-packages.txt)";

export function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}

const isRoot = (): boolean => process.geteuid?.() === 0;

function probeNetns(): string | undefined {
  if (!isRoot()) return 'netns (needs root)';
  if (!which('ip')) return 'netns (needs ip, package iproute2)';
  // Three tries: on a loaded machine `ip netns add` can lose a race with another test's namespace
  // setup (the shared /run/netns mount) or take long; a capability probe must not flake.
  let lastError = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const name = `iot-tofu-needs-${process.pid}-${attempt}`;
    try {
      execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
      return undefined;
    } catch (error) {
      lastError = String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim();
    } finally {
      try {
        execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore', timeout: 30_000 });
      } catch {
        // never created
      }
    }
  }
  return `netns (ip netns add refused: ${lastError || 'no reason given'})`;
}

function probeXattr(): string | undefined {
  if (!which('setfattr') || !which('getfattr')) return 'xattr (needs setfattr/getfattr, package attr)';
  const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-needs-'));
  try {
    const file = join(dir, 'f');
    writeFileSync(file, '');
    execFileSync('setfattr', ['-n', 'user.iot-tofu', '-v', '1', file], { stdio: 'ignore', timeout: 10_000 });
    return undefined;
  } catch {
    return `xattr (${tmpdir()} refuses user.* extended attributes)`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function probeExportsD(): string | undefined {
  // Debian's nfs-kernel-server does not ship the folder: whoever may create it (root) has it.
  for (const dir of ['/etc/exports.d', '/etc']) {
    try {
      accessSync(dir, constants.W_OK);
      if (dir === '/etc/exports.d' || !existsSync('/etc/exports.d')) return undefined;
    } catch {
      // not writable: try the next reason
    }
  }
  return 'exports.d (/etc/exports.d missing or not writable)';
}

const cache = new Map<string, string | undefined>();

/** Why `need` is unmet on this machine, or undefined when it is met. Cached per process. */
export function unmet(need: Need): string | undefined {
  if (cache.has(need)) return cache.get(need);
  let reason: string | undefined;
  if (need === 'root') reason = isRoot() ? undefined : 'root';
  else if (need === 'netns') reason = probeNetns();
  else if (need === 'xattr') reason = probeXattr();
  else if (need === 'exports.d') reason = probeExportsD();
  else if (isAbsolute(need)) {
    try {
      accessSync(need, constants.R_OK);
    } catch {
      reason = `file ${need}`;
    }
  } else reason = which(need) ? undefined : `program ${need}`;
  cache.set(need, reason);
  return reason;
}

export interface NeedsOptions {
  skip?: boolean;
  meta?: NeedsMeta;
}

/** Test options for a suite or test that needs more than Node; see the top of this file. */
export function needs(...list: Need[]): NeedsOptions {
  const reasons = [...new Set(list)].map(unmet).filter((r): r is string => r !== undefined);
  if (reasons.length === 0) return {};
  return inCI ? { meta: { needsUnmet: reasons } } : { skip: true, meta: { needsSkipped: reasons } };
}

/** True when every need is met; never skips nor fails anything. */
needs.met = (...list: Need[]): boolean => list.every((n) => unmet(n) === undefined);
