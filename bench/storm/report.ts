import { mkdirSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RunResult } from './measure.js';

export interface BenchReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly quick: boolean;
  readonly machine: { cpus: number; node: string; kernel: string };
  readonly model: string;
  readonly bytesPerBoot: number;
  readonly servers: readonly { name: string; description: string }[];
  /** Per profile: the fastest single-Pi boot any server achieved (ms), the T_min floor at N = 1. */
  readonly singlePiMs: Readonly<Record<string, number>>;
  readonly runs: readonly RunResult[];
}

/**
 * p99 over all N Pis, a never-booted Pi counting as infinitely late: null when the p99 Pi never
 * booted. (summary.bootMs.p99 is over the booted Pis only, which flatters a server that booted 2 of 100.)
 */
export function p99AllPis(run: RunResult): number | null {
  const rank = Math.max(1, Math.ceil(0.99 * run.pis));
  if (rank > run.summary.booted) return null;
  return run.summary.bootMs.p99 !== null && run.summary.neverBooted === 0 ? run.summary.bootMs.p99 : (run.summary.bootMs.max ?? null);
}

/** T_min = max(single-Pi boot time, N × B / R) for a run. */
export function tMin(report: Pick<BenchReport, 'singlePiMs'>, run: RunResult): number {
  return Math.max(report.singlePiMs[run.profile] ?? 0, run.linkBoundMs);
}

function atomicWrite(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.tmp`;
  writeFileSync(temp, text);
  const fd = openSync(temp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(temp, path);
}

const sec = (ms: number | null) => (ms === null ? '–' : (ms / 1000).toFixed(1));
const pct = (x: number) => `${Math.round(x * 100)}%`;

export function renderMarkdown(report: BenchReport): string {
  const lines = [
    `# Boot storm: ${report.model}, ${(report.bytesPerBoot / 1e6).toFixed(1)} MB per boot${report.quick ? ' (quick run)' : ''}`,
    '',
    `Run ${report.startedAt} → ${report.finishedAt} on ${report.machine.cpus} CPUs, Node ${report.machine.node}, Linux ${report.machine.kernel}.`,
    "Times are from each Pi's power-on to its last kernel byte. T_min = max(fastest single-Pi boot, N × B / R).",
    "Failed attempts: a file past the Pi's 30 s limit, a DHCP timeout (45 s) or a missing file; each costs the Pi a 5 s back-off and a restart.",
    'p50/p99/max are over the Pis that booted; the ratios below use p99 over all N Pis (a Pi that never booted counts as infinitely late).',
    '',
    '| profile | N | server | booted | never | failed attempts (dhcp/file) | wasted MB | p50 s | p99 s | max s | T_min s | p99/T_min | goodput/link | wire/link | CPU s | peak RSS MiB | load before/after |',
    '|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const run of report.runs) {
    const s = run.summary;
    const floor = tMin(report, run);
    lines.push(
      `| ${run.profile} | ${run.pis} | ${run.server} | ${s.booted} | ${s.neverBooted} | ${s.failedAttempts} (${s.failuresByReason['dhcp-timeout']}/${s.failuresByReason['file-timeout'] + s.failuresByReason['file-error']}) | ${(s.wastedBytes / 1e6).toFixed(1)} | ${sec(s.bootMs.p50)} | ${sec(s.bootMs.p99)} | ${sec(s.bootMs.max)} | ${sec(floor)} | ${s.bootMs.p99 === null ? '–' : (s.bootMs.p99 / floor).toFixed(2)} | ${pct(run.goodputOfLink)} | ${pct(run.wireOfLink)} | ${run.cpuSeconds.toFixed(1)} | ${run.peakRssMiB.toFixed(0)} | ${run.loadAverage ? run.loadAverage.map((l) => l.toFixed(1)).join(' / ') : '–'} |`,
    );
  }
  const split = report.runs.filter((r) => (r.processes?.length ?? 0) > 1);
  if (split.length > 0) {
    lines.push('', 'Per process (CPU s / peak RSS MiB) where a server is several processes:', '');
    for (const run of split) {
      lines.push(
        `- ${run.profile} N=${run.pis} ${run.server}: ${run.processes.map((p) => `${p.label} ${p.cpuSeconds.toFixed(1)} s / ${p.peakRssMiB.toFixed(0)} MiB`).join(', ')}`,
      );
    }
  }
  lines.push('', '## Servers', '');
  for (const server of report.servers) lines.push(`- **${server.name}**: ${server.description}`);
  const notes = [...new Set(report.runs.map((r) => `${r.server}: ${r.serverNote}`))];
  lines.push('', 'As run:', '', ...notes.map((n) => `- ${n}`), '');
  lines.push('## Ratios (ours ÷ peer, same profile and N; p99 < 1 and fewer failed attempts are better)', '');
  lines.push(...summaryLines(report).map((l) => `- ${l}`), '');
  return `${lines.join('\n')}\n`;
}

/** One line per profile and N: ours against each peer. */
export function summaryLines(report: Pick<BenchReport, 'singlePiMs' | 'runs'>): string[] {
  const out: string[] = [];
  const keys = [...new Set(report.runs.map((r) => `${r.profile}|${r.pis}`))];
  for (const key of keys) {
    const [profile, n] = key.split('|');
    const runs = report.runs.filter((r) => r.profile === profile && String(r.pis) === n);
    const ours = runs.find((r) => r.server === 'ours');
    if (!ours) continue;
    const p99 = p99AllPis;
    const oursP99 = p99(ours);
    const floor = tMin(report, ours);
    const parts = runs
      .filter((r) => r !== ours)
      .map((peer) => {
        const peerP99 = p99(peer);
        const ratio =
          oursP99 !== null && peerP99 !== null
            ? (oursP99 / peerP99).toFixed(2)
            : oursP99 === null
              ? '∞ (our p99 Pi never booted)'
              : `0 (peer's p99 Pi never booted: ${peer.summary.neverBooted}/${peer.pis} did not)`;
        // The peer's own TFTP server process (tftpd-hpa's run also holds our proxy, listed second).
        const main = peer.processes?.[0] ?? peer;
        return `${peer.server} p99 ×${ratio}, failed ${ours.summary.failedAttempts} vs ${peer.summary.failedAttempts}, booted ${ours.summary.booted} vs ${peer.summary.booted}, CPU ×${main.cpuSeconds > 0 ? (ours.cpuSeconds / main.cpuSeconds).toFixed(2) : '–'}, RSS ×${main.peakRssMiB > 0 ? (ours.peakRssMiB / main.peakRssMiB).toFixed(2) : '–'}`;
      });
    out.push(
      `${profile} N=${n}: ours ${ours.summary.booted}/${ours.pis} booted, p99 ${oursP99 === null ? 'never' : sec(oursP99)} s = ${oursP99 === null ? '–' : (oursP99 / floor).toFixed(2)}×T_min (${sec(floor)} s), ${ours.summary.failedAttempts} failed | ${parts.join(' | ')}`,
    );
  }
  return out;
}

const COLORS: Record<string, string> = { ours: '#d62728', dnsmasq: '#1f77b4', 'dnsmasq-max': '#17becf', 'tftpd-hpa': '#2ca02c' };
/** Colours for servers outside COLORS (variants of ours), handed out in order so no two share one. */
const SPARE_COLORS = ['#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

function serverColors(servers: readonly string[]): Map<string, string> {
  let spare = 0;
  return new Map(servers.map((s) => [s, COLORS[s] ?? SPARE_COLORS[spare++ % SPARE_COLORS.length]!]));
}

/** The value a run is drawn at: its p99, or the run limit (hollow) when some Pi never booted. */
function plotted(run: BenchReport['runs'][number]): { ms: number; hollow: boolean } {
  const p99 = run.summary.bootMs.p99;
  const hollow = run.summary.neverBooted > 0 || p99 === null;
  return { ms: hollow ? run.limitMs : p99, hollow };
}

/** Small multiples, one panel per profile: p99 boot time against N per server, T_min dashed. */
export function renderSvg(report: BenchReport): string {
  const profiles = [...new Set(report.runs.map((r) => r.profile))];
  const servers = [...new Set(report.runs.map((r) => r.server))];
  const colors = serverColors(servers);
  const W = 360;
  const H = 260;
  const m = { l: 50, r: 12, t: 28, b: 40 };
  const panels: string[] = [];
  profiles.forEach((profile, pi) => {
    const runs = report.runs.filter((r) => r.profile === profile);
    const ns = [...new Set(runs.map((r) => r.pis))].sort((a, b) => a - b);
    const ys = runs.flatMap((r) => [plotted(r).ms, tMin(report, r)]);
    const yMax = Math.max(1, ...ys) / 1000;
    const x = (n: number) => m.l + (ns.length <= 1 ? 0.5 : ns.indexOf(n) / (ns.length - 1)) * (W - m.l - m.r);
    const y = (s: number) => H - m.b - (s / yMax) * (H - m.t - m.b);
    const g: string[] = [
      `<g transform="translate(${pi * W},0)">`,
      `<text x="${W / 2}" y="16" text-anchor="middle" font-weight="bold">${profile}: p99 boot time (s) vs N</text>`,
    ];
    g.push(
      `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="#333"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="#333"/>`,
    );
    for (let k = 0; k <= 4; k++) {
      const v = (yMax * k) / 4;
      g.push(
        `<text x="${m.l - 4}" y="${y(v) + 4}" text-anchor="end" font-size="10">${v.toFixed(0)}</text><line x1="${m.l}" x2="${W - m.r}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`,
      );
    }
    for (const n of ns) g.push(`<text x="${x(n)}" y="${H - m.b + 14}" text-anchor="middle" font-size="10">${n}</text>`);
    g.push(`<text x="${W / 2}" y="${H - 6}" text-anchor="middle" font-size="11">Pis powered on together</text>`);
    const floor = ns.map((n) => {
      const run = runs.find((r) => r.pis === n)!;
      return `${x(n)},${y(tMin(report, run) / 1000)}`;
    });
    g.push(`<polyline points="${floor.join(' ')}" fill="none" stroke="#777" stroke-dasharray="4 3"/>`);
    for (const server of servers) {
      const points = ns.flatMap((n) => {
        const run = runs.find((r) => r.pis === n && r.server === server);
        if (!run) return [];
        const { ms, hollow } = plotted(run);
        return [{ n, v: ms / 1000, hollow }];
      });
      const color = colors.get(server)!;
      g.push(`<polyline points="${points.map((p) => `${x(p.n)},${y(p.v)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
      for (const p of points)
        g.push(`<circle cx="${x(p.n)}" cy="${y(p.v)}" r="3.5" fill="${p.hollow ? 'white' : color}" stroke="${color}"/>`);
    }
    g.push('</g>');
    panels.push(g.join('\n'));
  });
  // Legend in rows that fit the drawing's width, the T_min/hollow key on a row of its own.
  const width = Math.max(900, Math.max(1, profiles.length) * W);
  const perRow = Math.max(1, Math.floor((width - 20) / 150));
  const items = servers.map(
    (s, i) =>
      `<g transform="translate(${10 + (i % perRow) * 150},${H + 8 + Math.floor(i / perRow) * 18})"><rect width="12" height="12" fill="${colors.get(s)}"/><text x="16" y="11" font-size="12">${s}</text></g>`,
  );
  const keyRow = Math.ceil(servers.length / perRow);
  items.push(
    `<g transform="translate(10,${H + 8 + keyRow * 18})"><line x1="0" x2="14" y1="6" y2="6" stroke="#777" stroke-dasharray="4 3"/><text x="18" y="11" font-size="12">T_min; hollow = some Pis never booted (drawn at the run limit)</text></g>`,
  );
  const legend = items.join('\n');
  const height = H + 16 + (keyRow + 1) * 18;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n${panels.join('\n')}\n${legend}\n</svg>\n`;
}

export function writeReport(report: BenchReport, basePath: string): string[] {
  const files = [`${basePath}.json`, `${basePath}.md`, `${basePath}.svg`];
  atomicWrite(files[0]!, `${JSON.stringify(report, null, 1)}\n`);
  atomicWrite(files[1]!, renderMarkdown(report));
  atomicWrite(files[2]!, renderSvg(report));
  return files;
}
