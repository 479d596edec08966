/**
 * Memory under a boot-storm-like load (issue: our server at 400–500 MiB peak RSS where dnsmasq
 * stays at 5 MiB): `clients` concurrent lock-step downloads (busybox tftp, blksize 1468) of an
 * 8 MiB kernel, each Pi asking for `<serial>/kernel8.img`, every serial folder a hard link of one
 * file as in bench/storm/tree.ts. Each server runs fresh for this phase alone, so its peak is this
 * load's; tftpd-hpa forks per transfer, so its figure is the sum over its process tree, sampled.
 */
import { linkSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { stopProcess } from '../../test/lab/index.js';
import type { Lab } from '../../test/lab/index.js';

export const MEMORY_FILE_MB = 8;

export interface MemoryResult {
  server: string;
  clients: number;
  seconds: number;
  failures: number;
  /** Peak resident set (process tree for tftpd-hpa), MiB. */
  peakRssMb: number;
  /** Our server only: peaks of process.memoryUsage() sampled inside the process, MiB. */
  inside?: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
}

export interface MemoryServer {
  name: string;
  host: string;
  ip: string;
  /** Starts the server on root; resolves once it serves. */
  start(root: string): Promise<ChildProcess>;
}

/** Writes `<root>/<serial>/kernel8.img` for `count` serials, all hard links of one random file. */
export function buildMemoryTree(root: string, count: number): string[] {
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const kernel = join(root, 'kernel8.img');
  writeFileSync(kernel, randomBytes(MEMORY_FILE_MB * 1024 * 1024), { mode: 0o644 });
  const serials = Array.from({ length: count }, (_v, i) => (0x10000000 + i).toString(16));
  for (const serial of serials) {
    mkdirSync(join(root, serial), { mode: 0o755 });
    linkSync(kernel, join(root, serial, 'kernel8.img'));
  }
  return serials;
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** The pid and its live descendants (from /proc/<pid>/stat parent ids). */
function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, parent] of parentOf) if (parent === tree[i]) tree.push(pid);
  return tree;
}

export async function measureMemory(
  lab: Lab,
  clientHost: string,
  server: MemoryServer,
  root: string,
  serials: readonly string[],
  timeoutMs: number,
): Promise<MemoryResult> {
  const child = await server.start(root);
  let stdout = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  const pid = child.pid!;
  let treePeakKiB = 0;
  const sample = () => {
    const tree = descendants(pid);
    treePeakKiB = Math.max(
      treePeakKiB,
      tree.reduce((sum, p) => sum + statusKiB(p, 'VmRSS'), 0),
    );
  };
  const sampler = setInterval(sample, 100);
  const started = performance.now();
  let results: Array<Awaited<ReturnType<typeof lab.run>>>;
  try {
    results = await Promise.all(
      serials.map((serial) =>
        lab.run(clientHost, 'busybox', ['tftp', '-b', '1468', '-g', '-r', `${serial}/kernel8.img`, '-l', '/dev/null', server.ip], {
          timeoutMs,
        }),
      ),
    );
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - started) / 1000;
  sample();
  const hwmKiB = statusKiB(pid, 'VmHWM');
  await stopProcess(child);
  const statsLine = /stats (\{.*\})/.exec(stdout)?.[1];
  const inside = statsLine ? (JSON.parse(statsLine) as { memoryPeakMiB?: MemoryResult['inside'] }).memoryPeakMiB : undefined;
  return {
    server: server.name,
    clients: serials.length,
    seconds,
    failures: results.filter((r) => r.code !== 0).length,
    // One process: its own high-water mark (exact); a forking server: the sampled tree sum.
    peakRssMb: Math.max(hwmKiB, treePeakKiB) / 1024,
    ...(inside ? { inside } : {}),
  };
}
