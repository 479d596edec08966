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
export interface ProcessUsage {
  readonly cpuSeconds: number;
  readonly peakRssMiB: number;
}

export class ProcessMeter {
  private peakKiB = 0;
  private readonly perRoot: { baseline: number; ticks: number; peakKiB: number }[];
  private readonly timer: NodeJS.Timeout;

  /** Start it once the servers are ready: their start-up CPU is not part of the storm. */
  constructor(
    private readonly roots: readonly number[],
    intervalMs = 250,
  ) {
    this.perRoot = roots.map(() => ({ baseline: 0, ticks: 0, peakKiB: 0 }));
    this.sample();
    for (const root of this.perRoot) root.baseline = root.ticks;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    let total = 0;
    this.roots.forEach((pid, index) => {
      const slot = this.perRoot[index]!;
      let rss = 0;
      let ticks = 0;
      for (const [i, stat] of processTree(pid).entries()) {
        rss += rssKiB(stat.pid);
        ticks += stat.ownTicks + (i === 0 ? stat.reapedTicks : 0);
      }
      slot.peakKiB = Math.max(slot.peakKiB, rss, hwmKiB(pid));
      if (ticks > 0) slot.ticks = Math.max(slot.ticks, ticks);
      total += rss;
    });
    this.peakKiB = Math.max(this.peakKiB, total);
  }

  /** Takes a last sample (call before stopping the server) and stops sampling. */
  finish(): ProcessUsage & { perProcess: ProcessUsage[] } {
    this.sample();
    clearInterval(this.timer);
    const perProcess = this.perRoot.map((r) => ({ cpuSeconds: (r.ticks - r.baseline) / CLOCK_TICKS, peakRssMiB: r.peakKiB / 1024 }));
    return {
      cpuSeconds: perProcess.reduce((sum, p) => sum + p.cpuSeconds, 0),
      peakRssMiB: Math.max(this.peakKiB / 1024, ...perProcess.map((p) => p.peakRssMiB)),
      perProcess,
    };
  }
}
