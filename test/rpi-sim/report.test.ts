import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../bench/storm/measure.js';
import { renderMarkdown, renderSvg, summaryLines, tMin, type BenchReport } from '../../bench/storm/report.js';

function run(server: string, pis: number, p99: number | null, failed: number, booted = pis): RunResult {
  return {
    server,
    serverNote: `${server} as run`,
    profile: 'lan100',
    pis,
    summary: {
      pis,
      booted,
      neverBooted: pis - booted,
      failedAttempts: failed,
      failuresByReason: { 'dhcp-timeout': 0, 'file-timeout': failed, 'file-error': 0 },
      wastedBytes: failed * 5e6,
      usefulBytes: booted * 12.2e6,
      bootMs: { p50: p99, p99, max: p99 },
      elapsedMs: p99 ?? 100_000,
    },
    linkBoundMs: pis * 1008,
    makespanMs: p99 ?? 100_000,
    goodputOfLink: 0.9,
    wireOfLink: 0.93,
    wireBytes: 1e9,
    cpuSeconds: server === 'ours' ? 4 : 2,
    peakRssMiB: server === 'ours' ? 100 : 5,
    processes:
      server === 'tftpd-hpa'
        ? [
            { label: 'in.tftpd', cpuSeconds: 1, peakRssMiB: 2 },
            { label: 'our proxy', cpuSeconds: 1, peakRssMiB: 80 },
          ]
        : [{ label: server, cpuSeconds: 2, peakRssMiB: 5 }],
    limitMs: 140_000,
    strayDhcp: 0,
    loadAverage: [1, 2],
    perPi: [],
    serverTail: '',
  };
}

const report: BenchReport = {
  startedAt: '2026-11-27T00:00:00Z',
  finishedAt: '2026-11-27T01:00:00Z',
  quick: false,
  machine: { cpus: 2, node: '20', kernel: '6.1' },
  model: 'pi4',
  bytesPerBoot: 12.22e6,
  servers: [
    { name: 'ours', description: 'ours' },
    { name: 'dnsmasq', description: 'dnsmasq' },
    { name: 'tftpd-hpa', description: 'tftpd-hpa' },
  ],
  singlePiMs: { lan100: 1000 },
  runs: [
    run('ours', 1, 1000, 0),
    run('dnsmasq', 1, 1020, 0),
    run('ours', 50, 60_000, 2),
    run('dnsmasq', 50, null, 140, 0),
    run('tftpd-hpa', 50, 120_000, 90, 30),
  ],
};

describe('boot-storm result rendering', () => {
  it('T_min is the larger of the single-Pi boot and N × B / R', () => {
    expect(tMin(report, report.runs[0]!)).toBe(1008);
    expect(tMin(report, report.runs[2]!)).toBe(50_400);
  });

  it('summarises ours against each peer per N, also when a peer booted none', () => {
    const lines = summaryLines(report);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain('lan100 N=50: ours 50/50 booted, p99 60.0 s = 1.19×T_min');
    expect(lines[0]).toContain('dnsmasq p99 ×0.98, failed 0 vs 0, booted 1 vs 1');
    expect(lines[1]).toContain("dnsmasq p99 ×0 (peer's p99 Pi never booted: 50/50 did not), failed 2 vs 140, booted 50 vs 0");
    // 30 of 50 booted: the p99 Pi of all 50 never did, whatever the p99 of the 30 was; CPU/RSS against in.tftpd itself.
    expect(lines[1]).toContain(
      "tftpd-hpa p99 ×0 (peer's p99 Pi never booted: 20/50 did not), failed 2 vs 90, booted 50 vs 30, CPU ×4.00, RSS ×50.00",
    );
  });

  it('renders a Markdown table row per run and a well-formed SVG', () => {
    const md = renderMarkdown(report);
    expect(md.split('\n').filter((l) => l.startsWith('| lan100 |'))).toHaveLength(5);
    expect(md).toContain('in.tftpd 1.0 s / 2 MiB, our proxy 1.0 s / 80 MiB');
    const svg = renderSvg(report);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).not.toContain('NaN');
    expect(svg.match(/<polyline/g)?.length).toBe(4); // T_min + three servers
  });
});
