/**
 * Issue 19 item 7 on the wire: a server under test in the storm lab (topology.ts: dnsmasq as the
 * site DHCP server, `srv`, `pis`), a burst of forged Pi DISCOVERs from `pis` (forger.ts), then one
 * simulated Pi 4 (rpi-sim) powered on `realAfterMs` after the burst. What counts is when that Pi
 * got its first "Raspberry Pi Boot" offer and on which of its DISCOVERs. Used by
 * bench/storm/forged-wire.ts and test/boot-server/forged-discover.test.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PiReport } from '@iot-tofu/rpi-sim';
import { Fleet } from '../../packages/fleet/src/index.js';
import { repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../../test/lab/index.js';
import { SERVER_IP, type StormLab } from './topology.js';

/** The real Pi: rpi-sim's Pi 4 number 0 (serial 5e400000, MAC dc:a6:32:40:00:00), registered by `prepareServerDir`. */
export const REGISTERED_PI_INDEX = 0;
/** Pi 4 number 1: nobody registered it. */
export const UNREGISTERED_PI_INDEX = 1;

export type ForgedServer =
  /** The daemon, `boot-server start --dhcp-answer any-pi`, its default gate. */
  | { kind: 'daemon' }
  /** bench/storm/ours.ts (the daemon's gate on our libraries), with the newcomer lane's size. */
  | { kind: 'script'; newcomerSlots: number };

export interface ForgedRun {
  forged: number;
  pattern: 'once' | 'repeat' | 'rotate';
  realPi: 'registered' | 'unregistered';
  realAfterMs: number;
}

export interface FirstOffer {
  /** From the Pi's first DISCOVER to its first "Raspberry Pi Boot" offer; null: none within its DHCP timeout. */
  firstOfferMs: number | null;
  /** Which DISCOVER of the Pi (1 = its first) that offer answered. */
  discover: number | null;
  discovers: number;
  /** From the forgers' first round to the Pi's first DISCOVER, wall clock (< 0: before it); rpi-sim starts slowly here. */
  afterBurstMs?: number;
}

/** A fleet with the real Pi registered (its MAC known) and the daemon's config file; returns the config path. */
export async function prepareServerDir(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const keys = {
    tftpRoot: join(dir, 'tftpboot'),
    nfsRoot: join(dir, 'nfs'),
    stateDir: join(dir, 'state'),
    exportsFile: join(dir, 'exports'),
    serverIp: SERVER_IP,
    exportsClients: '10.77.0.0/16',
  };
  mkdirSync(keys.tftpRoot, { recursive: true });
  const fleet = await Fleet.open({ ...keys, runner: async () => ({ stdout: '', stderr: '' }) });
  await fleet.add({ serial: '5e400000', owner: 'jo', name: 'real-pi', mac: 'dc:a6:32:40:00:00', ownFilesystem: true });
  await fleet.close();
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ ...keys, apiPort: 8067, logLevel: 'warn', neighbourScanInterval: 0 }));
  return configFile;
}

export async function startForgedServer(storm: StormLab, server: ForgedServer, dir: string, configFile: string): Promise<ChildProcess> {
  if (server.kind === 'daemon') {
    const args = ['packages/boot-server/src/cli.ts', 'start', '--config', configFile, '--dhcp-answer', 'any-pi', '--log-level', 'info'];
    const child = storm.lab.spawn('srv', process.execPath, [...tsNodeArgs, ...args], { cwd: repoRoot });
    await waitForOutput(child, /"msg":"serving /, 60_000);
    return drained(child);
  }
  const args = ['bench/storm/ours.ts', '--server-ip', SERVER_IP, '--tftp-root', join(dir, 'tftpboot')];
  args.push('--newcomer-slots', String(server.newcomerSlots));
  const child = storm.lab.spawn('srv', process.execPath, [...tsNodeArgs, ...args], { cwd: repoRoot });
  await waitForOutput(child, /^ready/m, 60_000);
  return drained(child);
}

/** Nobody reads the server's log past start-up: a full pipe would block its writes (synchronous on Linux). */
function drained(child: ChildProcess): ChildProcess {
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

/** The burst (and its re-sends), then the real Pi; everything bounded by the Pi's 45 s DHCP timeout plus margins. */
export async function forgedBurstThenPi(storm: StormLab, run: ForgedRun): Promise<FirstOffer> {
  const rounds = run.pattern === 'once' ? 1 : 15;
  const pattern = run.pattern === 'rotate' ? 'rotate' : 'repeat';
  const forgerArgs = ['--count', String(run.forged), '--rounds', String(rounds), '--pattern', pattern];
  const forger = storm.lab.spawn('pis', process.execPath, [...tsNodeArgs, 'bench/storm/forger.ts', ...forgerArgs], { cwd: repoRoot });
  try {
    // realAfterMs 0: the Pi starts with the forger (both take ~2 s to start here), so its first
    // DISCOVER lands within about a second of the burst, before or after it: afterBurstMs says which.
    let burstAt = Number.NaN;
    const burst = waitForOutput(forger, /^round 0:/m, 30_000).then(() => (burstAt = performance.now()));
    if (run.realAfterMs > 0) {
      await burst;
      await new Promise((resolve) => setTimeout(resolve, run.realAfterMs));
    }
    const index = run.realPi === 'registered' ? REGISTERED_PI_INDEX : UNREGISTERED_PI_INDEX;
    const simArgs = ['--model', 'pi4', '--first-index', String(index), '--max-attempts', '1', '--limit', '60', '--json', '-', '--quiet'];
    const simulator = [...tsNodeArgs, 'packages/rpi-sim/src/bin.ts', ...simArgs];
    const sim = await storm.lab.run('pis', process.execPath, simulator, { cwd: repoRoot, timeoutMs: 90_000 });
    const exitedAt = performance.now();
    await burst;
    const result = JSON.parse(sim.stdout) as { reports: PiReport[]; summary: { elapsedMs: number } };
    const report = result.reports[0];
    if (!report) throw new Error(`rpi-sim printed no report: ${sim.stderr.slice(-500)}`);
    const offer = firstOffer(report);
    const firstDiscover = report.timeline.find((e) => e.kind === 'discover');
    // Power-on is about the end of the run minus its length: the process exits right after.
    if (firstDiscover) offer.afterBurstMs = Math.round(exitedAt - result.summary.elapsedMs + firstDiscover.at - burstAt);
    return offer;
  } finally {
    await stopProcess(forger);
  }
}

/** The first "Raspberry Pi Boot" offer of a Pi's first attempt, and which of its DISCOVERs it answered. */
export function firstOffer(report: PiReport): FirstOffer {
  const events = report.timeline.filter((e) => e.attempt === 1);
  const discovers = events.filter((e) => e.kind === 'discover');
  const offer = events.find((e) => e.kind === 'offer' && e.pxe);
  const first = discovers[0];
  if (!offer || !first) return { firstOfferMs: null, discover: null, discovers: discovers.length };
  return { firstOfferMs: offer.at - first.at, discover: discovers.filter((d) => d.at <= offer.at).length, discovers: discovers.length };
}
