import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileRunner, type CommandRunner } from '@iot-tofu/host-io';

export interface ActiveExport {
  path: string;
  client: string;
  options: string[];
}

export interface NfsHealth {
  /** True when the kernel's nfsd reports running threads. */
  nfsdRunning: boolean;
  /** Why nfsd is considered down (missing /proc/fs/nfsd, 0 threads …). */
  nfsdDetail: string;
  /**
   * Whether nfsd serves NFSv3, which Pi OS's initramfs mounts the root with (klibc nfsmount knows
   * no v4): from /proc/fs/nfsd/versions (`+3 +4 +4.1 …`); null when nfsd does not say.
   */
  servesV3: boolean | null;
  /** What `exportfs -v` says is exported right now. */
  exported: ActiveExport[];
  /** Set when exportfs itself could not run. */
  exportfsError?: string;
}

/**
 * Parses `exportfs -v` output. Long paths push the client onto the next line, so tokens are read
 * as a stream: a token starting with '/' is a path, the next one is `client(options)`.
 */
export function parseExportfsVerbose(text: string): ActiveExport[] {
  const out: ActiveExport[] = [];
  let path: string | undefined;
  for (const token of text.split(/\s+/).filter(Boolean)) {
    if (path === undefined) {
      path = token;
      continue;
    }
    const match = /^([^()]*)\(([^()]*)\)$/.exec(token);
    if (match) out.push({ path, client: match[1] || '*', options: (match[2] ?? '').split(',').filter(Boolean) });
    else out.push({ path, client: token, options: [] });
    path = undefined;
  }
  return out;
}

/** Reads `/proc/fs/nfsd/versions` (e.g. `-2 +3 +4 +4.1 +4.2`): is version 3 on? Pure. */
export function parseNfsdVersions(text: string): boolean | null {
  const tokens = text.split(/\s+/).filter(Boolean);
  if (tokens.includes('+3')) return true;
  if (tokens.includes('-3')) return false;
  return null;
}

/** nfsd state from /proc plus the active exports; never throws. */
export async function nfsHealth(options: { runner?: CommandRunner; procRoot?: string; exportfs?: string } = {}): Promise<NfsHealth> {
  const runner = options.runner ?? execFileRunner;
  let nfsdRunning = false;
  let nfsdDetail: string;
  try {
    const threads = Number.parseInt((await readFile(join(options.procRoot ?? '/proc', 'fs/nfsd/threads'), 'utf8')).trim(), 10);
    nfsdRunning = threads > 0;
    nfsdDetail = `${Number.isNaN(threads) ? 0 : threads} nfsd threads`;
  } catch (error) {
    nfsdDetail = `nfsd not available: ${(error as NodeJS.ErrnoException).code ?? String(error)} reading /proc/fs/nfsd/threads`;
  }
  const versions = await readFile(join(options.procRoot ?? '/proc', 'fs/nfsd/versions'), 'utf8').catch(() => '');
  const servesV3 = parseNfsdVersions(versions);
  if (servesV3 === false) nfsdDetail += '; NFSv3 is off (Pi OS mounts its root with v3: set vers3=y in /etc/nfs.conf [nfsd])';
  try {
    const { stdout } = await runner(options.exportfs ?? 'exportfs', ['-v']);
    return { nfsdRunning, nfsdDetail, servesV3, exported: parseExportfsVerbose(stdout) };
  } catch (error) {
    return { nfsdRunning, nfsdDetail, servesV3, exported: [], exportfsError: error instanceof Error ? error.message : String(error) };
  }
}
