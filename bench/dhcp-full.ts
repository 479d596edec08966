/**
 * Full-DHCP benchmark (issue 12): our server in full mode vs dnsmasq 2.90 in full mode (addresses
 * + the Pi boot menu), same run, same lab: a server host (10.77.0.2/16, pool 10.77.0.10 –
 * 10.77.255.250) and an address-less client host that acts as many Pi 4s, each with a new MAC.
 *   1. DORA latency: one client at a time, DISCOVER → OFFER → REQUEST → ACK, time to the ACK;
 *   2. leases/s: bounded open-loop steps of new clients (DISCOVER at a fixed rate, REQUEST on each
 *      OFFER), ACKs counted per second; every ACKed address must be distinct (checked).
 * Both servers: no ping before offering (dnsmasq --no-ping; ours dhcpConflictCheck false) since a
 * ping timeout would dominate both; both keep a lease file (ours fsyncs before each ACK batch).
 * A NAKed client starts over with a new DISCOVER (at most 3 times), as a real one would.
 * Each server runs `rounds` times, alternating.
 *
 * Run from bench/dhcp.ts (npm run bench:dhcp), or alone:
 *   node --conditions=@iot-tofu/source --import tsx bench/dhcp-full.ts [--quick]
 */
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { encodePiGuid } from '@iot-tofu/rpi';
import { asciiBytes, decodeDhcpMessage, encodeDhcpMessage, messageType, offersRaspberryPiBoot, type DhcpMessage } from '@iot-tofu/dhcp';
import { Lab, collect, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../test/lab/index.js';

const S = '10.77.0.2';
const RANGE = ['10.77.0.10', '10.77.255.250'] as const;

export interface FullPlan {
  doraCount: number;
  rates: number[];
  stepSeconds: number;
  seed: number;
}

interface Step {
  offeredPerSecond: number;
  sent: number;
  leased: number;
  leasesPerSecond: number;
}

export interface FullResult {
  doraMs: number[];
  doraLost: number;
  steps: Step[];
  /** Replies without an address or without the Pi menu (sampled), must stay 0. */
  wrong: number;
  /** An address ACKed to two clients: must stay 0. */
  duplicates: number;
  naks: number;
}

// ---------------------------------------------------------------- client side (in the namespace)

function pi4(index: number, seed: number): { mac: string; xid: number; options: Array<[number, Uint8Array]> } {
  const low = ((seed << 20) | index) & 0xffffff;
  const mac = `dc:a6:32:${[16, 8, 0].map((s) => ((low >> s) & 0xff).toString(16).padStart(2, '0')).join(':')}`;
  const xid = ((seed << 24) ^ Math.imul(index + 1, 2654435761)) >>> 0;
  const guid = encodePiGuid(
    { kind: 'fourcc', model: 'pi4', boardRevision: 0xc03111, macLow: '', serial: (0x20000000 + index).toString(16) },
    mac,
  );
  return {
    mac,
    xid,
    options: [
      [55, Uint8Array.of(1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135)],
      [93, Uint8Array.of(0, 0)],
      [94, Uint8Array.of(1, 2, 1)],
      [97, guid],
      [60, asciiBytes('PXEClient:Arch:00000:UNDI:002001')],
    ],
  };
}

async function runClient(plan: FullPlan): Promise<FullResult> {
  const socket = createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: 8 << 20 });
  await new Promise<void>((resolve) => socket.bind(68, '0.0.0.0', resolve));
  socket.setBroadcast(true);
  interface Pending {
    mac: string;
    options: Array<[number, Uint8Array]>;
    startedAt: number;
    requested: boolean;
    restarts?: number;
    done?: () => void;
  }
  const pending = new Map<number, Pending>();
  const leasedAddresses = new Set<string>();
  let duplicates = 0;
  let wrong = 0;
  let checked = 0;
  let naks = 0;
  let leased = 0;
  const doraMs: number[] = [];
  let timing = false;
  socket.on('message', (bytes) => {
    if (bytes.length < 240 || bytes[0] !== 2) return;
    const xid = bytes.readUInt32BE(4);
    const client = pending.get(xid);
    if (!client) return;
    let m: DhcpMessage;
    try {
      m = decodeDhcpMessage(bytes);
    } catch {
      wrong += 1;
      return;
    }
    const type = messageType(m);
    if (type === 'offer' && !client.requested) {
      if (m.yiaddr === '0.0.0.0' || (checked++ < 300 && !offersRaspberryPiBoot(m.options.get(43)))) wrong += 1;
      client.requested = true;
      const request = encodeDhcpMessage({
        op: 1,
        xid,
        chaddr: client.mac,
        options: [[53, Uint8Array.of(3)], [50, bytes.subarray(16, 20)], [54, m.options.get(54) ?? new Uint8Array(4)], ...client.options],
      });
      socket.send(request, 67, '255.255.255.255');
    } else if (type === 'ack' && client.requested) {
      if (leasedAddresses.has(m.yiaddr)) duplicates += 1;
      leasedAddresses.add(m.yiaddr);
      pending.delete(xid);
      leased += 1;
      if (timing) doraMs.push(performance.now() - client.startedAt);
      client.done?.();
    } else if (type === 'nak' && client.requested) {
      // dnsmasq does not hold an address for its OFFER: two new clients can be offered the same
      // one and the second REQUEST is NAKed. A real client starts over; so do we (at most 3 times).
      naks += 1;
      client.requested = false;
      client.restarts = (client.restarts ?? 0) + 1;
      if (client.restarts <= 3)
        socket.send(
          encodeDhcpMessage({ op: 1, xid, chaddr: client.mac, options: [[53, Uint8Array.of(1)], ...client.options] }),
          67,
          '255.255.255.255',
        );
    }
  });
  const discover = (xid: number, c: ReturnType<typeof pi4>) =>
    encodeDhcpMessage({ op: 1, xid, chaddr: c.mac, options: [[53, Uint8Array.of(1)], ...c.options] });

  // 1. sequential DORA
  let index = 0;
  let doraLost = 0;
  timing = true;
  for (let i = 0; i < plan.doraCount; i++) {
    const c = pi4(index++, plan.seed);
    const bytes = discover(c.xid, c);
    const got = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 1000);
      pending.set(c.xid, {
        mac: c.mac,
        options: c.options,
        startedAt: performance.now(),
        requested: false,
        done: () => {
          clearTimeout(timer);
          resolve(true);
        },
      });
    });
    socket.send(bytes, 67, '255.255.255.255');
    if (!(await got)) {
      doraLost += 1;
      pending.delete(c.xid);
    }
  }
  timing = false;

  // 2. open-loop steps, a new client per DISCOVER, paced in 2 ms slices
  const steps: Step[] = [];
  index = 100_000;
  for (const rate of plan.rates) {
    const count = Math.round(rate * plan.stepSeconds);
    const clients = Array.from({ length: count }, () => pi4(index++, plan.seed));
    const packets = clients.map((c) => discover(c.xid, c));
    pending.clear();
    leased = 0;
    const start = performance.now();
    let sent = 0;
    while (sent < count) {
      const due = Math.min(count, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
      for (; sent < due; sent++) {
        const c = clients[sent]!;
        pending.set(c.xid, { mac: c.mac, options: c.options, startedAt: performance.now(), requested: false });
        socket.send(packets[sent]!, 67, '255.255.255.255');
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => setTimeout(r, 1000)); // exchanges still in flight
    steps.push({ offeredPerSecond: rate, sent, leased, leasesPerSecond: leased / plan.stepSeconds });
  }
  socket.close();
  return { doraMs, doraLost, steps, wrong, duplicates, naks };
}

// ---------------------------------------------------------------- orchestration (host side)

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function startServer(lab: Lab, which: 'ours' | 'dnsmasq', dir: string): Promise<ChildProcess> {
  mkdirSync(dir, { recursive: true });
  if (which === 'ours') {
    const config = {
      mode: 'full',
      serverIp: S,
      range: RANGE,
      netmask: '255.255.0.0',
      leaseTimeSec: 3600,
      stateDir: dir,
      answer: 'any-pi',
      quiet: true,
      conflictCheck: false,
      probeMs: 0,
    };
    const child = lab.spawn('srv', process.execPath, [...tsNodeArgs, 'test/dhcp/serve.ts', JSON.stringify(config)], { cwd: repoRoot });
    await waitForOutput(child, /"event":"ready"/, 30_000);
    return child;
  }
  const child = lab.spawn('srv', 'dnsmasq', [
    '--conf-file=/dev/null',
    '--no-daemon',
    '--port=0',
    '--interface=eth0',
    '--bind-interfaces',
    `--dhcp-range=${RANGE[0]},${RANGE[1]},255.255.0.0,1h`,
    '--dhcp-lease-max=70000',
    '--no-ping',
    '--dhcp-broadcast',
    '--pxe-service=0,Raspberry Pi Boot',
    '--quiet-dhcp',
    '--log-facility=-',
    '--pid-file=',
    `--dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`,
  ]);
  await waitForOutput(child, /started, version|DHCP, IP range/, 10_000);
  await new Promise((r) => setTimeout(r, 300));
  return child;
}

async function measure(lab: Lab, which: 'ours' | 'dnsmasq', plan: FullPlan, dir: string): Promise<FullResult> {
  const server = await startServer(lab, which, dir);
  try {
    const client = lab.spawn('cli', process.execPath, [...tsNodeArgs, 'bench/dhcp-full.ts', '--full-client', JSON.stringify(plan)], {
      cwd: repoRoot,
    });
    const result = await collect(client, (plan.rates.length * (plan.stepSeconds + 2) + plan.doraCount + 60) * 1000);
    const line = result.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`full-mode client produced no result: ${result.stderr}`);
    return JSON.parse(line) as FullResult;
  } finally {
    await stopProcess(server);
  }
}

/** Runs the full-mode comparison in its own lab; prints the table and the ours/dnsmasq line. */
export async function fullModeBench(quick: boolean): Promise<object> {
  const rates = quick ? [500, 2000] : [250, 500, 1000, 2000, 4000, 8000];
  const rounds = quick ? 1 : 2;
  const work = mkdtempSync(join(tmpdir(), 'tofu-bench-dhcp-full-'));
  const lab = await Lab.create([{ name: 'srv', address: `${S}/16` }, { name: 'cli' }]);
  const results: Array<{ server: 'ours' | 'dnsmasq'; round: number; result: FullResult }> = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const which of ['ours', 'dnsmasq'] as const) {
        const plan: FullPlan = { doraCount: quick ? 100 : 300, rates, stepSeconds: 1, seed: round * 2 + (which === 'ours' ? 0 : 1) };
        results.push({ server: which, round, result: await measure(lab, which, plan, join(work, `${which}-${round}`)) });
      }
    }
  } finally {
    await lab.close();
    rmSync(work, { recursive: true, force: true });
  }

  console.log('\nfull mode: DISCOVER → OFFER → REQUEST → ACK, one client at a time (ms)');
  console.log('server   round    p50     p95     p99   lost  wrong  dup  naks');
  for (const { server, round, result } of results) {
    const d = result.doraMs;
    console.log(
      `${server.padEnd(8)} ${String(round).padStart(5)} ${[50, 95, 99].map((p) => percentile(d, p).toFixed(3).padStart(7)).join(' ')} ${String(result.doraLost).padStart(6)} ${String(result.wrong).padStart(6)} ${String(result.duplicates).padStart(4)} ${String(result.naks).padStart(5)}`,
    );
  }
  console.log('\nfull mode: leases per second completed at each offered rate of new clients (1 s steps)');
  console.log(`server   round ${rates.map((r) => `${r}/s`.padStart(9)).join(' ')}`);
  for (const { server, round, result } of results) {
    console.log(
      `${server.padEnd(8)} ${String(round).padStart(5)} ${result.steps.map((s) => s.leasesPerSecond.toFixed(0).padStart(9)).join(' ')}`,
    );
  }
  const summary = (server: 'ours' | 'dnsmasq') => {
    const mine = results.filter((r) => r.server === server).map((r) => r.result);
    return {
      doraP50: Math.min(...mine.map((r) => percentile(r.doraMs, 50))),
      doraP99: Math.min(...mine.map((r) => percentile(r.doraMs, 99))),
      peakLeasesPerSecond: Math.max(...mine.flatMap((r) => r.steps.map((s) => s.leasesPerSecond))),
      duplicates: mine.reduce((n, r) => n + r.duplicates, 0),
      wrong: mine.reduce((n, r) => n + r.wrong, 0),
    };
  };
  const ours = summary('ours');
  const dnsmasq = summary('dnsmasq');
  console.log(
    `\nfull mode ours/dnsmasq: DORA p50 ${(ours.doraP50 / dnsmasq.doraP50).toFixed(2)}x (ours ${ours.doraP50.toFixed(3)} ms, dnsmasq ${dnsmasq.doraP50.toFixed(3)} ms; lower is better), ` +
      `peak leases/s ${(ours.peakLeasesPerSecond / dnsmasq.peakLeasesPerSecond).toFixed(2)}x (ours ${ours.peakLeasesPerSecond.toFixed(0)}, dnsmasq ${dnsmasq.peakLeasesPerSecond.toFixed(0)}; higher is better); ` +
      `duplicate addresses ours ${ours.duplicates}, dnsmasq ${dnsmasq.duplicates}`,
  );
  const report = {
    bench: 'dhcp-full',
    date: new Date().toISOString(),
    ours,
    dnsmasq,
    results: results.map(({ server, round, result }) => ({
      server,
      round,
      steps: result.steps,
      doraLost: result.doraLost,
      wrong: result.wrong,
      duplicates: result.duplicates,
      naks: result.naks,
      doraP50: percentile(result.doraMs, 50),
    })),
  };
  console.log(JSON.stringify(report));
  writeFileSync(join(repoRoot, 'bench', 'results', `dhcp-full${quick ? '-quick' : ''}.json`), `${JSON.stringify(report, null, 1)}\n`);
  return report;
}

const direct = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (direct && process.argv.includes('--full-client')) {
  const plan = JSON.parse(process.argv[process.argv.indexOf('--full-client') + 1] ?? '{}') as FullPlan;
  const result = await runClient(plan);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else if (direct) {
  await fullModeBench(process.argv.includes('--quick'));
}
