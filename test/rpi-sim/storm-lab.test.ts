import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulatedIdentities, type PiReport, type StormSummary } from '@iot-tofu/rpi-sim';
import { repoRoot, tsNodeArgs } from '../lab/index.js';
import { needs } from '../needs.js';
import { createStormLab, type StormLab } from '../../bench/storm/topology.js';
import { SERVERS, ours, type RunningServer } from '../../bench/storm/servers.js';
import { buildBootTree } from '../../bench/storm/tree.js';

const SMALL_TREE = {
  'bootcode.bin': 20_000,
  'start.elf': 150_000,
  'fixup.dat': 700,
  'start4.elf': 120_000,
  'fixup4.dat': 500,
  'config.txt': 300,
  'cmdline.txt': 90,
  'bcm2710-rpi-3-b.dtb': 3000,
  'bcm2711-rpi-4-b.dtb': 5000,
  'bcm2712-rpi-5-b.dtb': 6000,
  'kernel8.img': 600_000,
  'kernel_2712.img': 700_000,
};

interface SimOutput {
  summary: StormSummary;
  reports: PiReport[];
}

// The simulated Pis against real peers: dnsmasq as the site router, and as proxy + TFTP server.
describe('rpi-sim in the boot-storm lab', needs('netns', 'dnsmasq', 'in.tftpd', 'tc'), () => {
  let work: string;
  let storm: StormLab;
  const pis = [...simulatedIdentities(3, 'pi4'), ...simulatedIdentities(2, 'pi5'), ...simulatedIdentities(1, 'pi3b')];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'rpi-sim-lab-'));
    buildBootTree({ root: join(work, 'tftp'), cacheDir: join(work, 'cache'), pis, sizes: SMALL_TREE });
    storm = await createStormLab({ poolSize: 24, workDir: work });
  });
  afterAll(async () => {
    await storm?.close();
    rmSync(work, { recursive: true, force: true });
  });

  async function simulate(model: string, count: number, extra: string[] = []): Promise<SimOutput> {
    const result = await storm.lab.run(
      'pis',
      process.execPath,
      [
        ...tsNodeArgs,
        join(repoRoot, 'packages/rpi-sim/src/bin.ts'),
        '--pis',
        String(count),
        '--model',
        model,
        '--limit',
        '40',
        '--json',
        '-',
        ...extra,
      ],
      { timeoutMs: 60_000, cwd: repoRoot },
    );
    expect(result.stderr).toContain('summary:');
    return JSON.parse(result.stdout) as SimOutput;
  }

  async function withServer<T>(start: Promise<RunningServer>, body: () => Promise<T>): Promise<T> {
    const server = await start;
    try {
      return await body();
    } finally {
      await server.stop();
    }
  }

  const context = () => ({
    lab: storm.lab,
    tftpRoot: join(work, 'tftp'),
    workDir: work,
    gate: 'adaptive',
    admissionBudget: '0',
    linkBudget: 0,
    oursRtoMs: 1000,
  });

  it('Pi 4s get an address from the router and "Raspberry Pi Boot" from dnsmasq, then boot over its TFTP', async () => {
    const out = await withServer(SERVERS.dnsmasq.start(context()), () => simulate('pi4', 3));
    expect(out.summary).toMatchObject({ pis: 3, booted: 3, neverBooted: 0, failedAttempts: 0 });
    for (const report of out.reports) {
      const offers = report.timeline.filter((e) => e.kind === 'offer');
      expect(offers.some((e) => e.kind === 'offer' && e.from === '10.77.0.1' && e.address?.startsWith('10.77.'))).toBe(true);
      expect(offers.some((e) => e.kind === 'offer' && e.from === '10.77.0.2' && e.pxe)).toBe(true);
      const kernel = report.timeline.find((e) => e.kind === 'file' && e.path === `${report.serial}/kernel8.img` && e.result === 'ok');
      expect(kernel).toMatchObject({ bytes: 600_000 });
      expect(report.timeline.some((e) => e.kind === 'file' && e.result === 'probe' && e.path === `${report.serial}/start4.elf`)).toBe(true);
      expect(report.usefulBytes).toBe(120_000 + 500 + 3 * 300 + 5000 + 90 + 600_000);
    }
  });

  it('Pi 5s boot kernel_2712.img without start4.elf through our proxy + TFTP', async () => {
    const out = await withServer(ours('script').start(context()), () => simulate('pi5', 2));
    expect(out.summary).toMatchObject({ pis: 2, booted: 2 });
    for (const report of out.reports) {
      expect(report.timeline.some((e) => e.kind === 'file' && e.path.endsWith('start4.elf'))).toBe(false);
      expect(report.timeline.some((e) => e.kind === 'file' && e.path === `${report.serial}/kernel_2712.img` && e.result === 'ok')).toBe(
        true,
      );
    }
  });

  it('a Pi 3B fetches bootcode.bin with 512-byte blocks from tftpd-hpa, then boots after bootcode.bin DHCPs again', async () => {
    const out = await withServer(SERVERS['tftpd-hpa'].start(context()), () => simulate('pi3b', 1));
    expect(out.summary).toMatchObject({ pis: 1, booted: 1 });
    const [report] = out.reports;
    expect(report!.timeline.filter((e) => e.kind === 'bound')).toHaveLength(2);
    expect(report!.timeline.find((e) => e.kind === 'file')).toMatchObject({ path: 'bootcode.bin', result: 'ok', bytes: 20_000 });
  });

  it('keeps resending DISCOVER while no proxy answers, and reports the Pi as never booted at the limit', async () => {
    const out = await simulate('pi4', 1, ['--limit', '8', '--max-attempts', '1']);
    // --limit 8 s < DHCP_TIMEOUT: the run stops first, so the Pi never booted and saw only router offers.
    expect(out.summary).toMatchObject({ booted: 0, neverBooted: 1 });
    expect(out.reports[0]!.timeline.some((e) => e.kind === 'offer' && e.pxe)).toBe(false);
    expect(out.reports[0]!.timeline.filter((e) => e.kind === 'discover').length).toBeGreaterThanOrEqual(2);
  });
});
