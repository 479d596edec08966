/**
 * proxyDHCP benchmark: our ProxyDhcpServer vs dnsmasq 2.90 in proxy mode, measured in the same
 * run on the same lab (docs/lab.md (a)): a server host (10.77.0.2) and an address-less client host
 * that broadcasts Pi 4-shaped DISCOVERs from 0.0.0.0:68, like real Pis.
 *   1. latency: one DISCOVER at a time (distinct MAC and xid each), DISCOVER → OFFER round trip;
 *   2. flood: a bounded open-loop burst of DISCOVERs (distinct MACs), offers received per second.
 * Each server runs twice, alternating, so drift on this 2-core machine hits both alike.
 *
 * Run: node --conditions=@iot-tofu/source --import tsx bench/dhcp.ts [--quick]
 * (internally re-runs itself with --client inside the client namespace)
 */
import { createSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { ChildProcess } from 'node:child_process';
import { encodePiGuid } from '@iot-tofu/rpi';
import { asciiBytes, decodeDhcpMessage, encodeDhcpMessage, offersRaspberryPiBoot } from '@iot-tofu/dhcp';
import { Lab, collect, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../test/lab/index.js';
import { fullModeBench } from './dhcp-full.js';

interface ClientPlan {
  latencyCount: number;
  /** Offered DISCOVER rates of the flood steps (per second); each step lasts stepSeconds. */
  floodRates: number[];
  stepSeconds: number;
  macSeed: number;
}

interface FloodStep {
  offeredPerSecond: number;
  sent: number;
  answered: number;
  offersPerSecond: number;
}

interface ClientResult {
  latencyMs: number[];
  latencyLost: number;
  flood: FloodStep[];
  /** Replies that were not a Pi offer (must stay 0). */
  wrong: number;
}

const S = '10.77.0.2';

// ---------------------------------------------------------------- client side (in the namespace)

function piDiscover(index: number, seed: number): { bytes: Uint8Array; xid: number } {
  // Pi 4 OUI; the low three bytes carry the run seed and the request index, so every request is a new client.
  const low = ((seed << 20) | index) & 0xffffff;
  const mac = `dc:a6:32:${[16, 8, 0].map((shift) => ((low >> shift) & 0xff).toString(16).padStart(2, '0')).join(':')}`;
  const xid = ((seed << 24) ^ (index * 2654435761)) >>> 0;
  const guid = encodePiGuid(
    { kind: 'fourcc', model: 'pi4', boardRevision: 0xc03111, macLow: '', serial: (0x10000000 + index).toString(16) },
    mac,
  );
  const bytes = encodeDhcpMessage({
    op: 1,
    xid,
    chaddr: mac,
    options: [
      [53, Uint8Array.of(1)],
      [55, Uint8Array.of(43, 60, 67, 128, 129, 130, 131, 132, 133, 134, 135, 66, 1, 3)],
      [93, Uint8Array.of(0, 0)],
      [94, Uint8Array.of(1, 2, 1)],
      [97, guid],
      [60, asciiBytes('PXEClient:Arch:00000:UNDI:002001')],
    ],
  });
  return { bytes, xid };
}

async function runClient(plan: ClientPlan): Promise<ClientResult> {
  const socket = createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: 4 << 20 });
  await new Promise<void>((resolve) => socket.bind(68, '0.0.0.0', resolve));
  socket.setBroadcast(true);
  const pending = new Map<number, number>();
  const latencies = new Map<number, number>();
  const waiters = new Map<number, () => void>();
  let wrong = 0;
  let checked = 0;
  let answered = 0;
  socket.on('message', (bytes) => {
    const at = performance.now();
    if (bytes.length < 240 || bytes[0] !== 2) return;
    const xid = bytes.readUInt32BE(4);
    const sentAt = pending.get(xid);
    if (sentAt === undefined) return; // duplicate, late, or someone else's
    // Full decode and content check on a sample only: the client must not be the bottleneck.
    if (checked < 200) {
      checked += 1;
      try {
        if (!offersRaspberryPiBoot(decodeDhcpMessage(bytes).options.get(43))) wrong += 1;
      } catch {
        wrong += 1;
      }
    }
    pending.delete(xid);
    answered += 1;
    latencies.set(xid, at - sentAt);
    waiters.get(xid)?.();
  });
  const send = (bytes: Uint8Array) =>
    new Promise<void>((resolve, reject) => socket.send(bytes, 67, '255.255.255.255', (e) => (e ? reject(e) : resolve())));

  // 1. sequential latency: one DISCOVER in flight at a time
  const latencyMs: number[] = [];
  let latencyLost = 0;
  for (let i = 0; i < plan.latencyCount; i++) {
    const { bytes, xid } = piDiscover(i, plan.macSeed);
    const got = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 500);
      waiters.set(xid, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    pending.set(xid, performance.now());
    await send(bytes);
    if (await got) latencyMs.push(latencies.get(xid)!);
    else latencyLost += 1;
    waiters.delete(xid);
    pending.delete(xid);
  }

  // 2. bounded open-loop flood: fixed offered rates, every DISCOVER a new client, paced in 2 ms slices
  const flood: FloodStep[] = [];
  let index = 100_000;
  for (const rate of plan.floodRates) {
    const count = Math.round(rate * plan.stepSeconds);
    const packets = Array.from({ length: count }, () => piDiscover(index++, plan.macSeed)); // built before the clock starts
    pending.clear();
    answered = 0;
    const start = performance.now();
    let sent = 0;
    while (sent < count) {
      const due = Math.min(count, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
      for (; sent < due; sent++) {
        const packet = packets[sent]!;
        pending.set(packet.xid, performance.now());
        socket.send(packet.bytes, 67, '255.255.255.255');
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => setTimeout(r, 500)); // replies still in flight
    flood.push({ offeredPerSecond: rate, sent, answered, offersPerSecond: answered / plan.stepSeconds });
  }
  socket.close();
  return { latencyMs, latencyLost, flood, wrong };
}

// ---------------------------------------------------------------- orchestration (host side)

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function startServer(lab: Lab, which: 'ours' | 'dnsmasq'): Promise<ChildProcess> {
  if (which === 'ours') {
    const config = { serverIp: S, answer: 'any-pi', quiet: true, pi3RepeatDelayMs: 0 };
    const child = lab.spawn('srv', process.execPath, [...tsNodeArgs, 'test/dhcp/serve.ts', JSON.stringify(config)], { cwd: repoRoot });
    await waitForOutput(child, /"event":"ready"/, 20_000);
    return child;
  }
  const child = lab.spawn('srv', 'dnsmasq', [
    '--conf-file=/dev/null',
    '--no-daemon',
    '--port=0',
    '--interface=eth0',
    '--bind-interfaces',
    '--dhcp-range=10.77.0.0,proxy',
    '--pxe-service=0,Raspberry Pi Boot',
    '--quiet-dhcp',
    '--log-facility=-',
    '--pid-file=',
    '--dhcp-leasefile=/dev/null',
  ]);
  await waitForOutput(child, /started, version|DHCP, proxy/, 10_000);
  await new Promise((r) => setTimeout(r, 300));
  return child;
}

async function measure(lab: Lab, which: 'ours' | 'dnsmasq', plan: ClientPlan) {
  const server = await startServer(lab, which);
  try {
    const client = lab.spawn('cli', process.execPath, [...tsNodeArgs, 'bench/dhcp.ts', '--client', JSON.stringify(plan)], {
      cwd: repoRoot,
    });
    const result = await collect(client, (plan.floodRates.length * (plan.stepSeconds + 1) + 40) * 1000);
    const line = result.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`client produced no result: ${result.stderr}`);
    return JSON.parse(line) as ClientResult;
  } finally {
    await stopProcess(server);
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const floodRates = quick ? [2000, 8000] : [1000, 2000, 4000, 8000, 16000, 32000];
  const lab = await Lab.create([{ name: 'srv', address: `${S}/24` }, { name: 'cli' }]);
  const results: Array<{ server: 'ours' | 'dnsmasq'; round: number; result: ClientResult }> = [];
  try {
    const rounds = quick ? 1 : 2;
    for (let round = 1; round <= rounds; round++) {
      for (const which of ['ours', 'dnsmasq'] as const) {
        const plan: ClientPlan = {
          latencyCount: quick ? 100 : 300,
          floodRates,
          stepSeconds: 1,
          macSeed: round * 2 + (which === 'ours' ? 0 : 1),
        };
        results.push({ server: which, round, result: await measure(lab, which, plan) });
      }
    }
  } finally {
    await lab.close();
  }

  console.log('DISCOVER → OFFER latency, one request in flight (ms)');
  console.log('server   round    p50     p95     p99   lost  wrong');
  for (const { server, round, result } of results) {
    const l = result.latencyMs;
    console.log(
      `${server.padEnd(8)} ${String(round).padStart(5)} ${[50, 95, 99].map((p) => percentile(l, p).toFixed(3).padStart(7)).join(' ')} ${String(result.latencyLost).padStart(6)} ${String(result.wrong).padStart(6)}`,
    );
  }
  console.log('\nflood: offers per second answered at each offered DISCOVER rate (1 s steps, new client per DISCOVER)');
  console.log(`server   round ${floodRates.map((r) => `${r}/s`.padStart(9)).join(' ')}`);
  for (const { server, round, result } of results) {
    console.log(
      `${server.padEnd(8)} ${String(round).padStart(5)} ${result.flood.map((f) => f.offersPerSecond.toFixed(0).padStart(9)).join(' ')}`,
    );
  }
  // Per server: best p50 over rounds, best peak offers/s over rounds and steps.
  const summary = (server: 'ours' | 'dnsmasq') => {
    const mine = results.filter((r) => r.server === server).map((r) => r.result);
    return {
      p50: Math.min(...mine.map((r) => percentile(r.latencyMs, 50))),
      p99: Math.min(...mine.map((r) => percentile(r.latencyMs, 99))),
      peak: Math.max(...mine.flatMap((r) => r.flood.map((f) => f.offersPerSecond))),
    };
  };
  const ours = summary('ours');
  const dnsmasq = summary('dnsmasq');
  console.log(
    `\nours/dnsmasq: p50 latency ${(ours.p50 / dnsmasq.p50).toFixed(2)}x (ours ${ours.p50.toFixed(3)} ms, dnsmasq ${dnsmasq.p50.toFixed(3)} ms; lower is better), ` +
      `peak offers/s ${(ours.peak / dnsmasq.peak).toFixed(2)}x (ours ${ours.peak.toFixed(0)}, dnsmasq ${dnsmasq.peak.toFixed(0)}; higher is better)`,
  );
  console.log(
    JSON.stringify({
      bench: 'dhcp',
      ours,
      dnsmasq,
      results: results.map(({ server, round, result }) => ({
        server,
        round,
        flood: result.flood,
        lost: result.latencyLost,
        wrong: result.wrong,
      })),
    }),
  );
  // Full-DHCP mode (issue 12): DORA latency and leases/s vs dnsmasq in full mode, same run.
  await fullModeBench(quick);
}

if (process.argv.includes('--client')) {
  const plan = JSON.parse(process.argv[process.argv.indexOf('--client') + 1] ?? '{}') as ClientPlan;
  const result = await runClient(plan);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  await main();
}
