import { setMaxListeners } from 'node:events';
import type { PiModel } from '@iot-tofu/rpi';
import { behaviourFor, type PiBehaviour } from './behaviour.js';
import { sleep, systemClock, type Clock } from './clock.js';
import { bootPi, type PiIdentity, type PiLink } from './pi.js';
import type { FailureReason, PiReport } from './timeline.js';

const OUI: Record<PiModel, string> = { pi3b: 'b8:27:eb', 'pi3b+': 'b8:27:eb', pi4: 'dc:a6:32', pi5: '2c:cf:67' };

/**
 * Deterministic identities for `count` Pis: serials `5e<model byte><index>` and MACs in the
 * model's OUI, so runs are repeatable and a server's boot tree can be prepared in advance.
 */
export function simulatedIdentities(count: number, model: PiModel, firstIndex = 0): PiIdentity[] {
  const modelByte = { pi3b: 0x30, 'pi3b+': 0x3b, pi4: 0x40, pi5: 0x50 }[model];
  return Array.from({ length: count }, (_, k) => {
    const index = firstIndex + k;
    const low = (modelByte << 16) | (index & 0xffff);
    const serial = (0x5e000000 | low).toString(16).padStart(8, '0');
    const tail = [modelByte, (index >> 8) & 0xff, index & 0xff].map((b) => b.toString(16).padStart(2, '0')).join(':');
    return { name: `pi-${String(index).padStart(3, '0')}`, serial, mac: `${OUI[model]}:${tail}`, model };
  });
}

export interface BootStormOptions {
  readonly pis: readonly PiIdentity[];
  readonly link: PiLink;
  readonly clock?: Clock;
  readonly behaviour?: (identity: PiIdentity) => PiBehaviour;
  /** Power-on of the Pis is spread uniformly over this many ms (0: all together). */
  readonly powerOnSpreadMs?: number;
  /** Hard bound of the whole run; Pis not booted by then are reported as never booted. */
  readonly limitMs: number;
  readonly tftpServer?: string;
  readonly maxAttempts?: number;
  readonly random?: () => number;
  readonly signal?: AbortSignal;
  /** Called as each Pi finishes (booted, gave up or stopped). */
  readonly onReport?: (report: PiReport) => void;
}

export interface StormSummary {
  readonly pis: number;
  readonly booted: number;
  readonly neverBooted: number;
  /** Failed boot attempts of all Pis (file past its limit, DHCP timeout, missing file). */
  readonly failedAttempts: number;
  readonly failuresByReason: Readonly<Record<FailureReason, number>>;
  readonly wastedBytes: number;
  readonly usefulBytes: number;
  /** Time to last kernel byte over the booted Pis (ms from each Pi's power-on). */
  readonly bootMs: { readonly p50: number | null; readonly p99: number | null; readonly max: number | null };
  /** Wall time of the whole run. */
  readonly elapsedMs: number;
}

export interface StormResult {
  readonly summary: StormSummary;
  readonly reports: readonly PiReport[];
}

/** Powers on every Pi (optionally spread), waits until all booted or gave up or limitMs passed. */
export async function runBootStorm(options: BootStormOptions): Promise<StormResult> {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const stop = new AbortController();
  // Every Pi in flight listens on this one signal (one lease, fetch or back-off at a time): a wide
  // storm is not a leak, so the limit is the number of Pis, not Node's default 10.
  setMaxListeners(options.pis.length + 1, stop.signal);
  const onOuterAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const limit = clock.setTimeout(() => stop.abort(), options.limitMs);
  const started = clock.now();
  const spread = options.powerOnSpreadMs ?? 0;
  try {
    const reports = await Promise.all(
      options.pis.map(async (identity) => {
        if (spread > 0) await sleep(clock, random() * spread, stop.signal);
        const report = await bootPi({
          identity,
          behaviour: options.behaviour?.(identity) ?? behaviourFor(identity.model),
          link: options.link,
          clock,
          signal: stop.signal,
          random,
          ...(options.tftpServer ? { tftpServer: options.tftpServer } : {}),
          ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
        });
        options.onReport?.(report);
        return report;
      }),
    );
    return { reports, summary: summarize(reports, clock.now() - started) };
  } finally {
    clock.clearTimeout(limit);
    options.signal?.removeEventListener('abort', onOuterAbort);
  }
}

export function summarize(reports: readonly PiReport[], elapsedMs: number): StormSummary {
  const times = reports.flatMap((r) => (r.bootMs === undefined ? [] : [r.bootMs])).sort((a, b) => a - b);
  const failuresByReason: Record<FailureReason, number> = { 'dhcp-timeout': 0, 'file-timeout': 0, 'file-error': 0 };
  for (const report of reports) for (const failure of report.failures) failuresByReason[failure.reason]++;
  return {
    pis: reports.length,
    booted: times.length,
    neverBooted: reports.length - times.length,
    failedAttempts: reports.reduce((sum, r) => sum + r.failures.length, 0),
    failuresByReason,
    wastedBytes: reports.reduce((sum, r) => sum + r.wastedBytes, 0),
    usefulBytes: reports.reduce((sum, r) => sum + r.usefulBytes, 0),
    bootMs: { p50: percentile(times, 50), p99: percentile(times, 99), max: times.at(-1) ?? null },
    elapsedMs,
  };
}

/** Nearest-rank percentile of an ascending list (null when empty). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? null;
}
