/**
 * `npm run bench:tftp -- --clients curl`: the TFTP throughput benchmark on loopback, no network
 * namespaces (runs wherever the servers can bind port 69 on 127.x addresses, i.e. as root).
 *
 * Servers, each on its own loopback address, port 69, all started at once: ours with the daemon's
 * defaults (transfer threads), ours with every transfer on the main thread (--threads 0),
 * optionally another serve.ts as "before" (--ours-serve-before FILE), dnsmasq and tftpd-hpa.
 * Clients: curl's TFTP (lock-step, blksize 1468, tsize), one process per download: a 10 MiB file
 * to 1 and to 50 clients at once. Rounds interleave the servers, so background load on a shared
 * machine hits all alike: the per-round ratio ours/dnsmasq is the like-for-like figure, its median
 * what we report. Also: the server's CPU seconds per scenario (ours and dnsmasq; tftpd-hpa forks
 * per transfer) and the not-found probe latency (bench/tftp/probe.ts).
 *
 * Every download is bounded in time (curl --max-time), every server is stopped by PID at the end.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NATIVE_ENV } from '@iot-tofu/tftp';
import { collect, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../../test/lab/index.js';

export interface CurlBenchOptions {
  readonly quick: boolean;
  readonly json?: string;
  /** serve.ts of our server (default: this checkout's). */
  readonly oursServe: string;
  /** Another serve.ts run beside ours as "before" (an older checkout's), for before/after in one run. */
  readonly beforeServe?: string;
}

type Server = 'iot-tofu' | 'iot-tofu-main' | 'iot-tofu-dgram' | 'before' | 'dnsmasq' | 'tftpd-hpa';
/** Addresses unlikely to be used by anything else on the machine (all of 127/8 is loopback). */
const ADDRESS: Record<Server, string> = {
  'iot-tofu': '127.77.15.1',
  'iot-tofu-main': '127.77.15.2',
  'iot-tofu-dgram': '127.77.15.6',
  before: '127.77.15.3',
  dnsmasq: '127.77.15.4',
  'tftpd-hpa': '127.77.15.5',
};
const FILE_MB = 10;
const BLKSIZE = 1468;
const CLIENT_TIMEOUT_S = 120;

interface Measurement {
  server: Server;
  round: number;
  concurrency: number;
  mbPerSec: number;
  failures: number;
  cpuSeconds?: number;
}
interface Probe {
  count: number;
  lost: number;
  p50: number;
  p90: number;
  p99: number;
}

function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

export async function runCurlBench(options: CurlBenchOptions): Promise<void> {
  const rounds = options.quick ? 2 : 5;
  const concurrencies = options.quick ? [1, 10] : [1, 50];
  const servers: Server[] = [
    'iot-tofu',
    'iot-tofu-main',
    'iot-tofu-dgram',
    ...(options.beforeServe ? (['before'] as const) : []),
    'dnsmasq',
    'tftpd-hpa',
  ];
  const work = mkdtempSync(join(tmpdir(), 'tofu-bench-tftp-curl-'));
  // dnsmasq and in.tftpd drop root: the tree must be world-readable.
  chmodSync(work, 0o755);
  const root = join(work, 'root');
  mkdirSync(root);
  const payload = randomBytes(FILE_MB * 1024 * 1024);
  writeFileSync(join(root, 'file10m.bin'), payload);
  const payloadSha = createHash('sha256').update(payload).digest('hex');
  const children = new Map<Server, ChildProcess>();
  const measurements: Measurement[] = [];
  const probes = new Map<Server, Probe>();
  try {
    for (const server of servers) children.set(server, await start(server, root, options));
    const pid = (server: Server) => children.get(server)!.pid!;
    // Warm-up: page cache for the peers, read cache and JIT for ours.
    for (const server of servers) await download(server, 1, work, payloadSha);
    for (let round = 1; round <= rounds; round++) {
      for (const concurrency of concurrencies) {
        for (const server of servers) {
          const measured = server !== 'tftpd-hpa';
          const cpuStart = measured ? procCpuSeconds(pid(server)) : 0;
          const run = await download(server, concurrency, work, payloadSha);
          const cpuSeconds = measured ? procCpuSeconds(pid(server)) - cpuStart : undefined;
          const mbPerSec = (concurrency * FILE_MB * 1024 * 1024) / run.seconds / 1e6;
          measurements.push({
            server,
            round,
            concurrency,
            mbPerSec,
            failures: run.failures,
            ...(cpuSeconds !== undefined ? { cpuSeconds } : {}),
          });
          const cpu = cpuSeconds?.toFixed(2) ?? '-';
          console.error(
            `round ${round} ${server.padEnd(13)} ${concurrency}x ${mbPerSec.toFixed(1).padStart(7)} MB/s  cpu ${cpu} s  ` +
              `failures ${run.failures}`,
          );
        }
      }
    }
    for (const server of servers) {
      const args = [...tsNodeArgs, join(repoRoot, 'bench/tftp/probe.ts'), ADDRESS[server], '69', options.quick ? '300' : '1000'];
      const result = await collect(spawn(process.execPath, args, { cwd: repoRoot }), 120_000);
      try {
        probes.set(server, JSON.parse(result.stdout) as Probe);
      } catch {
        console.error(`probe against ${server} failed: ${result.stderr.trim()}`);
      }
    }
  } finally {
    await Promise.all([...children.values()].map((child) => stopProcess(child)));
    rmSync(work, { recursive: true, force: true });
  }
  const lines = report(servers, concurrencies, rounds, measurements, probes);
  console.log(lines.join('\n'));
  if (options.json)
    writeFileSync(
      options.json,
      JSON.stringify({ clients: 'curl', loadavgAtEnd: loadavg(), measurements, probes: Object.fromEntries(probes) }, null, 2),
    );
}

async function start(server: Server, root: string, options: CurlBenchOptions): Promise<ChildProcess> {
  const ip = ADDRESS[server];
  let child: ChildProcess;
  if (server === 'dnsmasq') {
    const args = [
      '--conf-file=/dev/null',
      '--no-daemon',
      '--port=0',
      `--listen-address=${ip}`,
      '--bind-interfaces',
      '--enable-tftp',
      `--tftp-root=${root}`,
    ];
    child = spawn('dnsmasq', [...args, '--log-facility=-', '--pid-file='], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForOutput(child, /TFTP root is/, 10_000);
  } else if (server === 'tftpd-hpa') {
    child = spawn('in.tftpd', ['--foreground', '--listen', '--address', `${ip}:69`, '--secure', root], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
  } else {
    const serve = server === 'before' ? options.beforeServe! : options.oursServe;
    // All clients share one source IP: lift the per-client cap (default 16) to the load.
    const args = [...tsNodeArgs, serve, '--root', root, '--address', ip, '--port', '69', '--per-client-max', '64'];
    if (server === 'iot-tofu-main') args.push('--threads', '0');
    // The fallback path, as on a platform without the prebuilt addon.
    const env = server === 'iot-tofu-dgram' ? { ...process.env, [NATIVE_ENV]: '0' } : process.env;
    child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForOutput(child, /listening/, 30_000);
  }
  if (child.exitCode !== null) throw new Error(`${server} exited at start`);
  return child;
}

/** `concurrency` curl processes at once; the first download is checked byte for byte. */
async function download(server: Server, concurrency: number, work: string, sha: string): Promise<{ seconds: number; failures: number }> {
  const first = join(work, `${server}-${concurrency}.bin`);
  const url = `tftp://${ADDRESS[server]}/file10m.bin`;
  const started = performance.now();
  const runs = Array.from({ length: concurrency }, (_v, i) => {
    const args = [
      '-s',
      '--max-time',
      String(CLIENT_TIMEOUT_S),
      '--tftp-blksize',
      String(BLKSIZE),
      '-o',
      i === 0 ? first : '/dev/null',
      url,
    ];
    return collect(spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] }), (CLIENT_TIMEOUT_S + 10) * 1000);
  });
  const results = await Promise.all(runs);
  const seconds = (performance.now() - started) / 1000;
  let failures = results.filter((r) => r.code !== 0).length;
  if (results[0]!.code === 0 && createHash('sha256').update(readFileSync(first)).digest('hex') !== sha) failures++;
  rmSync(first, { force: true });
  return { seconds, failures };
}

function report(
  servers: readonly Server[],
  concurrencies: readonly number[],
  rounds: number,
  all: readonly Measurement[],
  probes: Map<Server, Probe>,
): string[] {
  const lines = [
    `TFTP benchmark, curl clients on loopback (no netns): ${FILE_MB} MiB file, blksize ${BLKSIZE}, lock-step; ` +
      `${rounds} interleaved rounds; ` +
      `${availableParallelism()} cores; load average at end ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    `iot-tofu = daemon defaults (transfer threads, native sockets); iot-tofu-main = --threads 0; iot-tofu-dgram = defaults with ${NATIVE_ENV}=0. ` +
      'Ratios: median over rounds of ours/peer in the same round.',
  ];
  const mbps = (ms: readonly Measurement[]) => median(ms.map((m) => m.mbPerSec)).toFixed(1);
  const of = (server: Server, concurrency: number) => all.filter((m) => m.server === server && m.concurrency === concurrency);
  for (const concurrency of concurrencies) {
    const dnsmasq = of('dnsmasq', concurrency);
    const hpa = of('tftpd-hpa', concurrency);
    for (const server of servers.filter((s) => s !== 'dnsmasq' && s !== 'tftpd-hpa')) {
      const ours = of(server, concurrency);
      const ratio = (peer: readonly Measurement[]) => {
        const perRound = ours
          .map((m, i) => (m.failures === 0 && peer[i]?.failures === 0 ? m.mbPerSec / peer[i]!.mbPerSec : NaN))
          .filter((r) => !Number.isNaN(r));
        return `${median(perRound).toFixed(2)}x (rounds ${perRound.map((r) => r.toFixed(2)).join(' ')})`;
      };
      const cpu = (ms: readonly Measurement[]) => median(ms.map((m) => m.cpuSeconds ?? NaN));
      const failures = [ours, dnsmasq, hpa].map((ms) => ms.reduce((sum, m) => sum + m.failures, 0)).join('/');
      lines.push(
        `${concurrency}x ${server.padEnd(13)} median ${mbps(ours)} MB/s (dnsmasq ${mbps(dnsmasq)}, ` +
          `tftpd-hpa ${mbps(hpa)}); vs dnsmasq ${ratio(dnsmasq)}; vs tftpd-hpa ${ratio(hpa)}; ` +
          `server CPU s ours/dnsmasq ${cpu(ours).toFixed(2)}/${cpu(dnsmasq).toFixed(2)}; failures (o/d/h) ${failures}`,
      );
    }
  }
  const dnsProbe = probes.get('dnsmasq');
  const text = (p: Probe | undefined) =>
    p ? `p50 ${p.p50.toFixed(0)} µs, p99 ${p.p99.toFixed(0)} µs${p.lost ? `, ${p.lost} lost` : ''}` : 'n/a';
  const probeText = (s: Server) => `${s} ${text(probes.get(s))}${s === 'dnsmasq' ? '' : ratio(probes.get(s))}`;
  const ratio = (p: Probe | undefined) => (p && dnsProbe ? ` (p50 ${(p.p50 / dnsProbe.p50).toFixed(2)}x dnsmasq)` : '');
  lines.push(`not-found probe (RRQ → ERROR 1): ${servers.map(probeText).join('; ')}`);
  return lines;
}
