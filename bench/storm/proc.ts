import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime of the process itself, in ticks. */
  ownTicks: number;
  /** cutime + cstime: children it already reaped (tftpd-hpa's per-transfer forks). */
  reapedTicks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const num = (i: number) => Number(fields[i - 3]);
    return { pid, ppid: num(4), ownTicks: num(14) + num(15), reapedTicks: num(16) + num(17) };
  } catch {
    return undefined;
  }
}

function rssKiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function hwmKiB(pid: number): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** The process and every live descendant (by scanning /proc for parent ids). */
function processTree(root: number): ProcStat[] {
  const all: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) all.push(stat);
  }
  const byParent = new Map<number, ProcStat[]>();
  for (const stat of all) byParent.set(stat.ppid, [...(byParent.get(stat.ppid) ?? []), stat]);
  const tree: ProcStat[] = [];
  const rootStat = all.find((s) => s.pid === root);
  if (!rootStat) return tree;
  const queue = [rootStat];
  while (queue.length > 0) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(byParent.get(next.pid) ?? []));
  }
  return tree;
}

/**
 * CPU seconds and peak RSS of the server processes, sampled from /proc while a run goes on.
 * CPU = own + reaped-children time of every root, plus live descendants at the last sample;
 * peak RSS = the highest sum of VmRSS over the trees (and at least each root's VmHWM).
 */
export class ProcessMeter {
  private peakKiB = 0;
  private lastCpuTicks = 0;
  private readonly baselineTicks: number;
  private readonly timer: NodeJS.Timeout;

  /** Start it once the servers are ready: their start-up CPU is not part of the storm. */
  constructor(private readonly roots: readonly number[], intervalMs = 250) {
    this.sample();
    this.baselineTicks = this.lastCpuTicks;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    let rss = 0;
    let ticks = 0;
    for (const root of this.roots) {
      const tree = processTree(root);
      for (const [i, stat] of tree.entries()) {
        rss += rssKiB(stat.pid);
        ticks += stat.ownTicks + (i === 0 ? stat.reapedTicks : 0);
      }
      this.peakKiB = Math.max(this.peakKiB, hwmKiB(root));
    }
    this.peakKiB = Math.max(this.peakKiB, rss);
    if (ticks > 0) this.lastCpuTicks = Math.max(this.lastCpuTicks, ticks);
  }

  /** Takes a last sample (call before stopping the server) and stops sampling. */
  finish(): { cpuSeconds: number; peakRssMiB: number } {
    this.sample();
    clearInterval(this.timer);
    return { cpuSeconds: (this.lastCpuTicks - this.baselineTicks) / CLOCK_TICKS, peakRssMiB: this.peakKiB / 1024 };
  }
}
