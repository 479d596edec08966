/**
 * TFTP benchmark: our server, dnsmasq (--enable-tftp) and tftpd-hpa under the same client load,
 * each in turn in the same network namespace (`srv`, port 69), clients in another (`cli`).
 * Over 400 lines on purpose: the lab, the three servers' start lines and the report of one run stay
 * together so a figure can be traced to how it was taken; the memory phase and curl mode are apart.
 *
 * Scenarios (10 MB file, blksize 1468): 1 and 50 concurrent lock-step downloads (busybox tftp,
 * a C client, one process per download) and the same with windowsize 16 (atftp; peers that do
 * not implement RFC 7440 negotiate it away and run lock-step). Plus one 30 MB lock-step download
 * from our server (the Pi's 30 s per-file limit).
 *
 * Our server runs the daemon's defaults (a transfer thread per spare core); for reference it also
 * runs with every transfer on the main thread (--threads 0) and in single-port mode.
 *
 * Prints aggregate throughput, our ratio to each peer, and our server's CPU time and peak RSS
 * (/proc/<pid>/stat utime+stime, /proc/<pid>/status VmHWM). Every loop is bounded in count and
 * time; the lab and every process are removed at the end.
 *
 * A memory phase comes first (bench/tftp/memory.ts): each server fresh, 100 (quick: 50)
 * concurrent lock-step downloads of an 8 MiB kernel through hard-linked per-serial folders,
 * peak RSS against dnsmasq and tftpd-hpa.
 *
 *   npm run bench:tftp [-- --quick] [-- --json FILE] [-- --only memory|throughput]
 *     [-- --ours-serve FILE]   (another serve.ts for our server, e.g. an older checkout's, for before/after)
 *   npm run bench:tftp -- --clients curl [-- --quick] [-- --json FILE] [-- --ours-serve-before FILE]
 *     (the throughput and probe figures with curl clients on loopback, no netns: bench/tftp/curl.ts)
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { defaultTransferThreads } from '@iot-tofu/tftp';
import { Lab, havePeers, canUseNetns, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../test/lab/index.js';
import { buildMemoryTree, measureMemory, MEMORY_FILE_MB } from './tftp/memory.js';
import type { MemoryResult } from './tftp/memory.js';
import { runCurlBench } from './tftp/curl.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    only: { type: 'string' },
    'ours-serve': { type: 'string', default: join(repoRoot, 'bench/tftp/serve.ts') },
    /** busybox (default): the netns benchmark below; curl: loopback, see bench/tftp/curl.ts. */
    clients: { type: 'string', default: 'busybox' },
    'ours-serve-before': { type: 'string' },
  },
});
if (flags.clients === 'curl') {
  const before = flags['ours-serve-before'];
  await runCurlBench({
    quick: flags.quick,
    oursServe: flags['ours-serve'],
    ...(flags.json ? { json: flags.json } : {}),
    ...(before ? { beforeServe: before } : {}),
  });
  process.exit(0);
}
if (flags.clients !== 'busybox') {
  console.error('bench:tftp --clients must be busybox or curl');
  process.exit(2);
}
const runMemory = flags.only !== 'throughput';
const runThroughput = flags.only !== 'memory';
const MEMORY_CLIENTS = flags.quick ? 50 : 100;

/** Each server gets its own namespace (all listen on port 69), so runs can interleave. */
const SERVER_HOSTS: Record<ServerName, { host: string; ip: string }> = {
  'iot-tofu': { host: 'ours', ip: '10.77.0.1' },
  'iot-tofu-1port': { host: 'ours1p', ip: '10.77.0.5' },
  'iot-tofu-main': { host: 'oursmain', ip: '10.77.0.6' },
  dnsmasq: { host: 'dnsm', ip: '10.77.0.3' },
  'tftpd-hpa': { host: 'hpa', ip: '10.77.0.4' },
};
const CLIENT_IP = '10.77.0.2';
const FILE_MB = 10;
const BIG_MB = 30;
const BLKSIZE = 1468;
const CONCURRENCY = flags.quick ? [1, 10] : [1, 50];
/** Rounds: every round runs every scenario against every server, interleaved, so background load hits all alike; the best round counts. */
const ROUNDS = flags.quick ? 2 : 5;
const CLIENT_TIMEOUT_MS = 120_000;

interface Scenario {
  name: string;
  concurrency: number;
  windowsize: number;
}
interface Measurement {
  server: ServerName;
  scenario: string;
  concurrency: number;
  windowsize: number;
  seconds: number;
  mbPerSec: number;
  failures: number;
  cpuSeconds?: number;
}

type ServerName = 'iot-tofu' | 'iot-tofu-main' | 'iot-tofu-1port' | 'dnsmasq' | 'tftpd-hpa';
/**
 * iot-tofu runs the daemon's defaults (transfer threads: one per spare core). For reference:
 * iot-tofu-main with every transfer on the main thread (--threads 0), iot-tofu-1port in
 * single-port mode (every transfer on port 69, which also means the main thread only).
 */
const SERVERS: ServerName[] = ['iot-tofu', 'iot-tofu-main', 'iot-tofu-1port', 'dnsmasq', 'tftpd-hpa'];

if (!canUseNetns() || !havePeers('dnsmasq', 'in.tftpd', 'busybox', 'atftp')) {
  console.error('bench:tftp needs root (network namespaces), dnsmasq, tftpd-hpa, busybox and atftp');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'tofu-bench-tftp-'));
// dnsmasq and in.tftpd drop root for nobody/tftp: the tree must be world-readable.
chmodSync(work, 0o755);
const root = join(work, 'root');
const out = join(work, 'out');
mkdirSync(root);
mkdirSync(out);
const payload = randomBytes(FILE_MB * 1024 * 1024);
writeFileSync(join(root, 'file10m.bin'), payload);
writeFileSync(join(root, 'file30m.bin'), randomBytes(BIG_MB * 1024 * 1024));
const payloadSha = createHash('sha256').update(payload).digest('hex');

const lab = await Lab.create([
  ...SERVERS.map((s) => ({ name: SERVER_HOSTS[s].host, address: `${SERVER_HOSTS[s].ip}/24` })),
  { name: 'cli', address: `${CLIENT_IP}/24` },
]);

function procCpuSeconds(pid: number): number {
  // Fields after the command name (which may contain spaces): utime is field 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
function procPeakRssMb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

async function startServer(name: ServerName, serveRoot = root, memory = false, extraArgs: string[] = []): Promise<ChildProcess> {
  let child: ChildProcess;
  const { host, ip } = SERVER_HOSTS[name];
  if (name === 'iot-tofu' || name === 'iot-tofu-1port' || name === 'iot-tofu-main') {
    // All benchmark clients share one source IP, so lift the per-client cap (default 16) to the load.
    const args = [
      ...tsNodeArgs,
      flags['ours-serve'],
      '--root',
      serveRoot,
      '--address',
      ip,
      '--port',
      '69',
      '--per-client-max',
      memory ? '256' : '64',
    ];
    if (memory) args.push('--memory-sample-ms', '50');
    args.push(...extraArgs);
    if (name === 'iot-tofu-1port') args.push('--single-port');
    if (name === 'iot-tofu-main') args.push('--threads', '0');
    child = lab.spawn(host, process.execPath, args, { cwd: repoRoot });
    await waitForOutput(child, /listening/, 20_000);
  } else if (name === 'dnsmasq') {
    // The memory phase runs more downloads at once than dnsmasq's default tftp-max (50).
    const max = memory ? ['--tftp-max=1000'] : [];
    child = lab.spawn(host, 'dnsmasq', [
      '--conf-file=/dev/null',
      '--no-daemon',
      '--port=0',
      `--listen-address=${ip}`,
      '--bind-interfaces',
      '--enable-tftp',
      `--tftp-root=${serveRoot}`,
      '--log-facility=-',
      '--pid-file=',
      ...max,
    ]);
    await waitForOutput(child, /TFTP root is/, 10_000);
  } else {
    child = lab.spawn(host, 'in.tftpd', ['--foreground', '--listen', '--address', `${ip}:69`, '--secure', serveRoot]);
    await new Promise((r) => setTimeout(r, 300));
  }
  if (child.exitCode !== null) throw new Error(`${name} exited at start`);
  return child;
}

/** Runs `concurrency` client processes in the client namespace at once; returns wall seconds and failures. */
async function load(server: ServerName, scenario: Scenario, file: string): Promise<{ seconds: number; failures: number }> {
  const SERVER_IP = SERVER_HOSTS[server].ip;
  const started = performance.now();
  const runs = Array.from({ length: scenario.concurrency }, (_v, i) => {
    // Keep the first download to check it byte for byte; the others go to /dev/null.
    const dest = i === 0 ? join(out, `${server}-${scenario.concurrency}-${scenario.windowsize}.bin`) : '/dev/null';
    const args =
      scenario.windowsize > 1
        ? [
            'atftp',
            [
              '--option',
              `blksize ${BLKSIZE}`,
              '--option',
              `windowsize ${scenario.windowsize}`,
              '-g',
              '-r',
              file,
              '-l',
              dest,
              SERVER_IP,
              '69',
            ],
          ]
        : ['busybox', ['tftp', '-b', String(BLKSIZE), '-g', '-r', file, '-l', dest, SERVER_IP]];
    return lab.run('cli', args[0] as string, args[1] as string[], { timeoutMs: CLIENT_TIMEOUT_MS }).then((result) => ({ result, dest }));
  });
  const results = await Promise.all(runs);
  const seconds = (performance.now() - started) / 1000;
  let failures = results.filter(({ result }) => result.code !== 0).length;
  const first = results[0]!;
  if (first.result.code === 0 && file === 'file10m.bin') {
    const sha = createHash('sha256').update(readFileSync(first.dest)).digest('hex');
    if (sha !== payloadSha) failures++;
  }
  rmSync(first.dest, { force: true });
  return { seconds, failures };
}

const scenarios: Scenario[] = [];
for (const windowsize of [1, 16])
  for (const concurrency of CONCURRENCY)
    scenarios.push({ name: `${concurrency}x ${windowsize === 1 ? 'lock-step' : `window ${windowsize}`}`, concurrency, windowsize });

const measurements: Measurement[] = [];
/** Every round's measurement (measurements keeps each server's best). */
const everyRound: Measurement[] = [];
let ours: { cpuSeconds: number; peakRssMb: number; bigSeconds?: number } | undefined;
const children = new Map<ServerName, ChildProcess>();
interface Probe {
  count: number;
  lost: number;
  p50: number;
  p90: number;
  p99: number;
}
const probes = new Map<ServerName, Probe>();
let ourIdleRssMb = NaN;

const memoryResults: MemoryResult[] = [];

try {
  if (runMemory) {
    const memoryRoot = join(work, 'mem');
    const serials = buildMemoryTree(memoryRoot, MEMORY_CLIENTS);
    // iot-tofu-streamed: our server with no read cache, every transfer streaming from disk (the
    // per-transfer memory bound for files that do not fit the cache).
    for (const label of ['iot-tofu', 'iot-tofu-streamed', 'dnsmasq', 'tftpd-hpa'] as const) {
      const name = label === 'iot-tofu-streamed' ? 'iot-tofu' : label;
      const extra = label === 'iot-tofu-streamed' ? ['--cache-mb', '0'] : [];
      const server = { name: label, ...SERVER_HOSTS[name], start: (dir: string) => startServer(name, dir, true, extra) };
      const result = await measureMemory(lab, 'cli', server, memoryRoot, serials, CLIENT_TIMEOUT_MS);
      memoryResults.push(result);
      console.error(
        `memory ${label.padEnd(10)} ${result.clients}x ${MEMORY_FILE_MB} MiB: peak RSS ${result.peakRssMb.toFixed(1)} MiB, ${result.seconds.toFixed(1)} s, failures ${result.failures}${result.inside ? ` (inside: ${JSON.stringify(result.inside)})` : ''}`,
      );
    }
  }
  if (runThroughput) await throughputPhase();
} finally {
  await Promise.all([...children.values()].map((child) => stopProcess(child)));
  await lab.close();
  rmSync(work, { recursive: true, force: true });
}

async function throughputPhase(): Promise<void> {
  for (const name of SERVERS) children.set(name, await startServer(name));
  const pid = (name: ServerName) => children.get(name)!.pid!;
  ourIdleRssMb = procPeakRssMb(pid('iot-tofu'));
  // Warm-up: page cache for everyone, our read cache for us.
  for (const name of SERVERS) await load(name, { name: 'warmup', concurrency: 1, windowsize: 1 }, 'file10m.bin');
  const ourCpuStart = procCpuSeconds(pid('iot-tofu'));
  const best = new Map<string, Measurement>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const scenario of scenarios) {
      for (const name of SERVERS) {
        // tftpd-hpa forks per transfer: its CPU is spread over children, so only ours and dnsmasq are measured.
        const measured = name !== 'tftpd-hpa';
        const cpuStart = measured ? procCpuSeconds(pid(name)) : 0;
        const run = await load(name, scenario, 'file10m.bin');
        const cpuSeconds = measured ? procCpuSeconds(pid(name)) - cpuStart : undefined;
        const bytes = scenario.concurrency * FILE_MB * 1024 * 1024;
        const m: Measurement = {
          server: name,
          scenario: scenario.name,
          concurrency: scenario.concurrency,
          windowsize: scenario.windowsize,
          seconds: run.seconds,
          mbPerSec: bytes / run.seconds / 1e6,
          failures: run.failures,
          ...(cpuSeconds !== undefined ? { cpuSeconds } : {}),
        };
        measurements.push(m);
        everyRound.push(m);
        const key = `${name}|${scenario.name}`;
        const previous = best.get(key);
        if (!previous || (m.failures === 0 && m.mbPerSec > previous.mbPerSec))
          best.set(key, { ...m, failures: m.failures + (previous?.failures ?? 0) });
        else previous.failures += m.failures;
        console.error(
          `round ${round} ${name.padEnd(10)} ${scenario.name.padEnd(18)} ${m.mbPerSec.toFixed(1).padStart(7)} MB/s  cpu ${cpuSeconds?.toFixed(2) ?? '-'} s  failures ${m.failures}`,
        );
      }
    }
  }
  measurements.length = 0;
  measurements.push(...best.values());
  // Not-found latency: the answer a Pi gets for each of its many probes for missing files.
  for (const name of SERVERS) {
    const result = await lab.run(
      'cli',
      process.execPath,
      [...tsNodeArgs, join(repoRoot, 'bench/tftp/probe.ts'), SERVER_HOSTS[name].ip, '69', flags.quick ? '100' : '300'],
      { cwd: repoRoot, timeoutMs: 60_000 },
    );
    try {
      probes.set(name, JSON.parse(result.stdout) as Probe);
    } catch {
      console.error(`probe against ${name} failed: ${result.stderr.trim()}`);
    }
  }
  const big = await load('iot-tofu', { name: 'big', concurrency: 1, windowsize: 1 }, 'file30m.bin');
  ours = {
    cpuSeconds: procCpuSeconds(pid('iot-tofu')) - ourCpuStart,
    peakRssMb: procPeakRssMb(pid('iot-tofu')),
    bigSeconds: big.failures === 0 ? big.seconds : NaN,
  };
}

const find = (server: ServerName, scenario: string) => measurements.find((m) => m.server === server && m.scenario === scenario);
const lines: string[] = [];
if (runThroughput)
  lines.push(
    `TFTP benchmark: ${FILE_MB} MiB file, blksize ${BLKSIZE}; each server in its own netns, clients (busybox tftp lock-step, atftp windowsize) in another; best of ${ROUNDS} interleaved rounds; load average at end ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
if (runThroughput)
  lines.push(
    `iot-tofu = daemon defaults (${defaultTransferThreads()} transfer thread(s) on this ${availableParallelism()}-core machine); "main thread" = --threads 0`,
  );
if (runThroughput)
  lines.push(
    'scenario            iot-tofu MB/s  dnsmasq MB/s  tftpd-hpa MB/s  vs dnsmasq  vs tftpd-hpa  CPU s ours/dnsmasq  failures(o/d/h)  main thread MB/s (vs dnsmasq)  single-port MB/s (vs dnsmasq)',
  );
for (const scenario of scenarios) {
  const o = find('iot-tofu', scenario.name);
  const d = find('dnsmasq', scenario.name);
  const h = find('tftpd-hpa', scenario.name);
  const sp = find('iot-tofu-1port', scenario.name);
  const mt = find('iot-tofu-main', scenario.name);
  if (!o || !d || !h || !sp || !mt) continue;
  lines.push(
    `${scenario.name.padEnd(18)}  ${o.mbPerSec.toFixed(1).padStart(13)}  ${d.mbPerSec.toFixed(1).padStart(12)}  ${h.mbPerSec.toFixed(1).padStart(14)}  ${(o.mbPerSec / d.mbPerSec).toFixed(2).padStart(9)}x  ${(o.mbPerSec / h.mbPerSec).toFixed(2).padStart(11)}x  ${`${(o.cpuSeconds ?? NaN).toFixed(2)}/${(d.cpuSeconds ?? NaN).toFixed(2)}`.padStart(17)}  ${o.failures}/${d.failures}/${h.failures}`.padEnd(
      16,
    ) +
      `  ${`${mt.mbPerSec.toFixed(1)} (${(mt.mbPerSec / d.mbPerSec).toFixed(2)}x)${mt.failures ? ` failures ${mt.failures}` : ''}`.padEnd(29)}` +
      `  ${sp.mbPerSec.toFixed(1)} (${(sp.mbPerSec / d.mbPerSec).toFixed(2)}x)${sp.failures ? ` failures ${sp.failures}` : ''}`,
  );
}
// Servers of one round ran back to back under the same background load: the per-round ratio is
// the like-for-like comparison, the best-of figures above the optimistic one for each side.
for (const scenario of scenarios) {
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const of = (server: ServerName) => everyRound.filter((m) => m.server === server && m.scenario === scenario.name)[round];
    const o = of('iot-tofu');
    const d = of('dnsmasq');
    if (o && d && o.failures === 0 && d.failures === 0) ratios.push(o.mbPerSec / d.mbPerSec);
  }
  if (ratios.length === 0) continue;
  const sorted = [...ratios].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  lines.push(
    `${scenario.name.padEnd(18)}  iot-tofu/dnsmasq per round: ${ratios.map((r) => r.toFixed(2)).join(' ')}  (median ${median.toFixed(2)}x)`,
  );
}
if (ours) {
  lines.push(
    `iot-tofu server process: CPU ${ours.cpuSeconds.toFixed(2)} s over all rounds, peak RSS ${ours.peakRssMb.toFixed(1)} MiB (${ourIdleRssMb.toFixed(1)} MiB right after start, under tsx; the read cache then holds ${FILE_MB + BIG_MB} MiB)`,
  );
  lines.push(`${BIG_MB} MiB file, 1 lock-step download at blksize ${BLKSIZE}: ${ours.bigSeconds?.toFixed(2)} s (Pi limit 30 s per file)`);
}
if (runThroughput) lines.push('(windowsize rows: dnsmasq and tftpd-hpa do not implement RFC 7440 and run those downloads lock-step)');
const ourProbe = probes.get('iot-tofu');
const dnsProbe = probes.get('dnsmasq');
if (ourProbe) {
  const text = (p: Probe | undefined) =>
    p ? `p50 ${p.p50.toFixed(0)} µs, p99 ${p.p99.toFixed(0)} µs${p.lost ? `, ${p.lost} lost` : ''}` : 'n/a';
  lines.push(
    `not-found probe (RRQ → ERROR 1) latency: iot-tofu ${text(ourProbe)}; dnsmasq ${text(dnsProbe)}; tftpd-hpa ${text(probes.get('tftpd-hpa'))}${dnsProbe ? `; p50 ratio ours/dnsmasq ${(ourProbe.p50 / dnsProbe.p50).toFixed(2)}` : ''}`,
  );
}
if (memoryResults.length > 0) {
  const mine = memoryResults.find((m) => m.server === 'iot-tofu');
  const streamed = memoryResults.find((m) => m.server === 'iot-tofu-streamed');
  const ratio = (peer: string) => {
    const other = memoryResults.find((m) => m.server === peer);
    return mine && other ? `${other.peakRssMb.toFixed(1)} MiB (ours ${(mine.peakRssMb / other.peakRssMb).toFixed(2)}x)` : 'n/a';
  };
  lines.push(
    `memory, ${MEMORY_CLIENTS} concurrent lock-step downloads of an ${MEMORY_FILE_MB} MiB file via hard-linked <serial>/ folders, each server fresh: ` +
      `peak RSS iot-tofu ${mine?.peakRssMb.toFixed(1)} MiB; dnsmasq ${ratio('dnsmasq')}; tftpd-hpa (process tree) ${ratio('tftpd-hpa')}` +
      (mine?.inside
        ? `; ours inside: peak heapUsed ${mine.inside.heapUsed.toFixed(1)}, external ${mine.inside.external.toFixed(1)}, arrayBuffers ${mine.inside.arrayBuffers.toFixed(1)} MiB`
        : '') +
      (streamed
        ? `; ours without read cache (every transfer streams): ${streamed.peakRssMb.toFixed(1)} MiB, arrayBuffers ${streamed.inside?.arrayBuffers.toFixed(1)} MiB`
        : '') +
      `; failures ${memoryResults.map((m) => `${m.server} ${m.failures}`).join(', ')}`,
  );
}
console.log(lines.join('\n'));
if (flags.json)
  writeFileSync(
    flags.json,
    JSON.stringify({ measurements, rounds: everyRound, ours, probes: Object.fromEntries(probes), memory: memoryResults }, null, 2),
  );
