import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { PiReport, StormSummary } from '@iot-tofu/rpi-sim';
import { collect, repoRoot, tsNodeArgs, type Lab } from '../../test/lab/index.js';
import { ProcessMeter } from './proc.js';
import type { ServerContext, ServerUnderTest } from './servers.js';
import { linkBytesSent, type LinkProfile } from './topology.js';

/** Ethernet + IPv4 + UDP + TFTP header bytes around each 1468-byte DATA payload on the wire. */
export const WIRE_OVERHEAD = (1468 + 4 + 8 + 20 + 14) / 1468;

export interface RunResult {
  readonly server: string;
  readonly serverNote: string;
  readonly profile: LinkProfile['name'];
  readonly pis: number;
  readonly summary: StormSummary;
  /** N × B / R with B the payload of one boot and R the link rate (wire overhead included). */
  readonly linkBoundMs: number;
  /** Time until the last Pi booted (or the run ended if some never did). */
  readonly makespanMs: number;
  /** Payload bytes of completed transfers per second over the makespan, as a fraction of the link rate. */
  readonly goodputOfLink: number;
  /** Bytes the server put on its link (tbf counter) per second over the makespan, as a fraction of the link rate. */
  readonly wireOfLink: number;
  readonly wireBytes: number;
  readonly cpuSeconds: number;
  readonly peakRssMiB: number;
  /** The same per server process (tftpd-hpa's row also holds our proxy). */
  readonly processes: readonly { label: string; cpuSeconds: number; peakRssMiB: number }[];
  readonly limitMs: number;
  readonly strayDhcp: number;
  /** Per Pi: when its last DHCP finished and when it booted (ms from power-on), failed attempts. */
  readonly perPi: readonly { bound: number | null; booted: number | null; failures: number }[];
  /** Last lines the server printed (ours prints its gate counters on exit). */
  readonly serverTail: string;
  /** 1-minute load average before and after: other work on this 2-core machine skews a run. */
  readonly loadAverage: readonly [number, number];
}

export interface RunPlan {
  readonly lab: Lab;
  readonly server: ServerUnderTest;
  readonly context: ServerContext;
  readonly profile: LinkProfile;
  readonly pis: number;
  readonly model: 'pi4' | 'pi5';
  readonly bytesPerBoot: number;
  readonly limitMs: number;
  readonly firstIndex: number;
}

/** One server × profile × N: fresh server, the Pis powered on together, measured, torn down. */
export async function runOnce(plan: RunPlan): Promise<RunResult> {
  const { lab, profile } = plan;
  const running = await plan.server.start(plan.context);
  const jsonFile = join(plan.context.workDir, `sim-${plan.server.name}-${profile.name}-${plan.pis}.json`);
  let meter: ProcessMeter | undefined;
  let result: RunResult;
  const loadBefore = loadavg()[0] ?? 0;
  try {
    meter = new ProcessMeter(running.pids);
    const wireBefore = await linkBytesSent(lab);
    const sim = lab.spawn(
      'pis',
      process.execPath,
      [
        ...tsNodeArgs,
        join(repoRoot, 'packages/rpi-sim/src/bin.ts'),
        '--pis',
        String(plan.pis),
        '--model',
        plan.model,
        '--first-index',
        String(plan.firstIndex),
        '--limit',
        String(Math.ceil(plan.limitMs / 1000)),
        '--json',
        jsonFile,
        '--quiet',
      ],
      { cwd: repoRoot },
    );
    const simResult = await collect(sim, plan.limitMs + 30_000);
    const usage = meter.finish();
    meter = undefined;
    const wireBytes = (await linkBytesSent(lab)) - wireBefore;
    if (simResult.code !== 0 && simResult.code !== 2) {
      throw new Error(`rpi-sim failed (${simResult.code ?? simResult.signal}): ${simResult.stderr.slice(-2000)}`);
    }
    const out = JSON.parse(readFileSync(jsonFile, 'utf8')) as { summary: StormSummary; droppedDhcp: number; reports: PiReport[] };
    const s = out.summary;
    const makespanMs = s.neverBooted === 0 && s.bootMs.max !== null ? s.bootMs.max : s.elapsedMs;
    const rateBytes = profile.rateBitsPerSecond / 8;
    result = {
      server: plan.server.name,
      serverNote: running.note,
      profile: profile.name,
      pis: plan.pis,
      summary: s,
      linkBoundMs: ((plan.pis * plan.bytesPerBoot * WIRE_OVERHEAD) / rateBytes) * 1000,
      makespanMs,
      goodputOfLink: s.usefulBytes / (makespanMs / 1000) / rateBytes,
      wireOfLink: wireBytes / (makespanMs / 1000) / rateBytes,
      wireBytes,
      cpuSeconds: usage.cpuSeconds,
      peakRssMiB: usage.peakRssMiB,
      processes: usage.perProcess.map((p, i) => ({ label: running.labels[i] ?? `pid ${running.pids[i]}`, ...p })),
      limitMs: plan.limitMs,
      strayDhcp: out.droppedDhcp,
      loadAverage: [loadBefore, loadavg()[0] ?? 0],
      perPi: out.reports.map((r) => ({
        bound: r.timeline.findLast((e) => e.kind === 'bound')?.at ?? null,
        booted: r.bootMs ?? null,
        failures: r.failures.length,
      })),
      serverTail: '',
    };
  } finally {
    meter?.finish();
    await running.stop();
    rmSync(jsonFile, { force: true });
  }
  return { ...result, serverTail: running.output().split('\n').slice(-4).join('\n') };
}
