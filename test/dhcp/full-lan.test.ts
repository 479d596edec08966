import { createHash, randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseStore } from '@iot-tofu/dhcp';
import { Lab, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { jsonEvents, parseJsonLines, runClient, type JsonEvent } from './lab.js';
import type { FullServeConfig } from './full-serve.js';

/**
 * Issue 12, on the wire: a dedicated region LAN with our server as its only DHCP server (no
 * dnsmasq in the topology). Our full mode (10.77.0.2, pool 10.77.0.100-10.77.1.200 on a /23,
 * lease file in a temp state dir, ping conflict check) serves real dhclient and busybox udhcpc,
 * scripted Pi 3B/4/5 bootloaders (address + Pi menu in one reply, then TFTP from us) and 200
 * simulated clients at once. A host squatting on 10.77.0.100 without a lease must be skipped (ping).
 * Last, a dnsmasq started on the segment makes a second full-mode server refuse to start.
 */
const S = '10.77.0.2';
const SQUATTER = '10.77.0.100';
const PI4 = { mac: 'dc:a6:32:01:36:c2', serial: 'ab5a4158' };
const PI5 = { mac: '2c:cf:67:00:00:05', serial: '1f2e3d4c' };
const PI3 = { mac: 'b8:27:eb:64:24:7d' };
const STATIC_MAC = '02:00:00:00:5a:01';
const STATIC_IP = '10.77.0.20';
const n = (a: string) => a.split('.').reduce((v, part) => v * 256 + Number(part), 0);
/** In the dynamic range (a /23: 10.77.0.255 and 10.77.1.0 are ordinary host addresses). */
const inPool = (a: string) => /^\d+\.\d+\.\d+\.\d+$/.test(a) && n(a) >= n('10.77.0.100') && n(a) <= n('10.77.1.200');

describe('full-DHCP mode on a dedicated LAN, no other DHCP server (network namespaces)', { timeout: 180_000, ...needs('netns', 'busybox', 'dhclient', 'ping', 'dnsmasq') }, () => {
  let lab: Lab;
  let work: string;
  let stateDir: string;
  let serve: ChildProcess;
  let events: JsonEvent[];
  const files = new Map<string, Buffer>();

  const serveConfig = (): FullServeConfig => ({
    serverIp: S,
    range: ['10.77.0.100', '10.77.1.200'],
    netmask: '255.255.254.0',
    router: '10.77.0.1',
    dns: ['10.77.0.1'],
    leaseTimeSec: 600,
    stateDir,
    answer: 'registered',
    registeredMacs: [PI3.mac],
    registeredSerials: [PI4.serial, PI5.serial],
    statics: { [STATIC_MAC]: STATIC_IP },
    pi3RepeatDelayMs: 300,
    tftpRoot: join(work, 'tftp'),
    probeMs: 1500,
  });

  async function startFullServe(host: string, config: FullServeConfig): Promise<{ child: ChildProcess; events: JsonEvent[] }> {
    const child = lab.spawn(host, process.execPath, [...tsNodeArgs, 'test/dhcp/full-serve.ts', JSON.stringify(config)], { cwd: repoRoot });
    const seen = jsonEvents(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await waitForOutput(child, /"event":"ready"/, 30_000);
    } catch (error) {
      throw new Error(`full-serve.ts did not start: ${(error as Error).message}\nstderr: ${stderr}`);
    }
    return { child, events: seen };
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tofu-dhcp-full-'));
    stateDir = join(work, 'state');
    mkdirSync(stateDir);
    const root = join(work, 'tftp');
    for (const [name, size] of [
      [`${PI4.serial}/start4.elf`, 200_000],
      [`${PI5.serial}/config.txt`, 2_000],
      ['bootcode.bin', 52_000],
    ] as const) {
      const bytes = randomBytes(size);
      mkdirSync(join(root, name, '..'), { recursive: true });
      writeFileSync(join(root, name), bytes);
      files.set(name, bytes);
    }
    lab = await Lab.create([
      { name: 'sut', address: `${S}/23` },
      { name: 'squat', address: `${SQUATTER}/23` },
      { name: 'pi3' },
      { name: 'pi4' },
      { name: 'pi5' },
      { name: 'dhc' },
      { name: 'udh' },
      { name: 'stat' },
      { name: 'many' },
    ]);
    for (const [host, mac] of [['pi3', PI3.mac], ['pi4', PI4.mac], ['pi5', PI5.mac], ['stat', STATIC_MAC]] as const) {
      await lab.run(host, 'ip', ['link', 'set', 'eth0', 'address', mac]);
    }
    ({ child: serve, events } = await startFullServe('sut', serveConfig()));
  });

  afterAll(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  async function tftpGet(host: string, file: string): Promise<Buffer> {
    const out = join(work, `${host}-${file.replaceAll('/', '_')}`);
    const result = await lab.run(host, 'busybox', ['tftp', '-b', '1468', '-g', '-r', file, '-l', out, S], { timeoutMs: 15_000 });
    if (result.code !== 0) throw new Error(`busybox tftp ${file}: ${result.stderr}`);
    return readFileSync(out);
  }

  it.each([
    ['Pi 4', 'pi4', PI4, `${PI4.serial}/start4.elf`],
    ['Pi 5', 'pi5', PI5, `${PI5.serial}/config.txt`],
  ] as const)('%s: address and Pi boot menu in one OFFER from us, REQUEST → ACK, then TFTP from us', async (_name, profile, pi, file) => {
    const { replies, lease } = await runClient(lab, profile, { mode: 'discover', profile, mac: pi.mac, serial: pi.serial, requestLease: true, listenMs: 3000 });
    const offer = replies.find((r) => r.type === 'offer');
    expect(offer).toMatchObject({ from: `${S}:67`, serverId: S, piBoot: true, vendorClass: 'PXEClient', siaddr: S });
    expect(inPool(offer!.yiaddr)).toBe(true);
    expect(offer!.yiaddr).not.toBe(SQUATTER);
    expect(replies.every((r) => r.serverId === S)).toBe(true); // nobody else on this LAN
    expect(lease).toMatchObject({ address: offer!.yiaddr, server: S });
    await lab.run(profile, 'ip', ['addr', 'add', `${lease!.address}/23`, 'dev', 'eth0']);
    expect(sha(await tftpGet(profile, file))).toBe(sha(files.get(file)!));
    expect(events).toContainEqual(expect.objectContaining({ event: 'lease', mac: pi.mac, state: 'bound', address: lease!.address, serial: pi.serial }));
  });

  it('Pi 3B ROM: the OFFER (address + menu, repeated) is its lease; bootcode.bin over TFTP from that address', async () => {
    const { replies } = await runClient(lab, 'pi3', { mode: 'discover', profile: 'pi3b', mac: PI3.mac, listenMs: 2500 });
    const offers = replies.filter((r) => r.type === 'offer');
    expect(offers).toHaveLength(2);
    expect(offers[0]).toMatchObject({ xid: 0x26f30339, piBoot: true, serverId: S });
    expect(offers[1]!.hex).toBe(offers[0]!.hex);
    await lab.run('pi3', 'ip', ['addr', 'add', `${offers[0]!.yiaddr}/23`, 'dev', 'eth0']);
    expect(sha(await tftpGet('pi3', 'bootcode.bin'))).toBe(sha(files.get('bootcode.bin')!));
    const onDisk = (await LeaseStore.inStateDir(stateDir).load());
    expect(onDisk.leases).toContainEqual(expect.objectContaining({ mac: PI3.mac, address: offers[0]!.yiaddr, state: 'bound' }));
  });

  it('dhclient gets a lease with our mask, router and DNS', async () => {
    const conf = join(work, 'dhclient.conf');
    writeFileSync(conf, 'request subnet-mask, broadcast-address, routers, domain-name-servers;\ntimeout 20; retry 60; initial-interval 1;\n');
    const leases = join(work, 'dhclient.leases');
    const child = lab.spawn('dhc', 'dhclient', ['-4', '-d', '-1', '-v', '-cf', conf, '-lf', leases, '-pf', join(work, 'dhclient.pid'), '-sf', '/bin/true', 'eth0']);
    try {
      const line = await waitForOutput(child, /bound to 10\.77\.\d+\.\d+/, 30_000);
      const address = line.replace('bound to ', '');
      expect(inPool(address)).toBe(true);
      expect(address).not.toBe(SQUATTER);
      const text = readFileSync(leases, 'utf8');
      expect(text).toContain(`fixed-address ${address};`);
      expect(text).toContain('option subnet-mask 255.255.254.0;');
      expect(text).toContain('option routers 10.77.0.1;');
      expect(text).toContain('option domain-name-servers 10.77.0.1;');
      expect(text).toContain(`option dhcp-server-identifier ${S};`);
    } finally {
      await stopProcess(child);
    }
  });

  it('busybox udhcpc gets a lease from us', async () => {
    const result = await lab.run('udh', 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-n', '-q', '-t', '5', '-T', '2', '-s', '/bin/true'], { timeoutMs: 30_000 });
    const match = /lease of (10\.77\.\d+\.\d+) obtained from 10\.77\.0\.2/.exec(result.stdout + result.stderr);
    expect(match, result.stdout + result.stderr).not.toBeNull();
    expect(inPool(match![1]!)).toBe(true);
  });

  it('a static address (staticAddressFor) outside the pool goes to its client', async () => {
    const result = await lab.run('stat', 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-n', '-q', '-t', '5', '-T', '2', '-s', '/bin/true'], { timeoutMs: 30_000 });
    expect(result.stdout + result.stderr).toContain(`lease of ${STATIC_IP} obtained from ${S}`);
  });

  it('200 simulated clients at once get 200 distinct addresses from the pool, never the squatted one', async () => {
    const result = await lab.run('many', process.execPath, [...tsNodeArgs, 'test/dhcp/many-clients.ts', JSON.stringify({ count: 200, deadlineMs: 60_000 })], { cwd: repoRoot, timeoutMs: 90_000 });
    const out = parseJsonLines(result.stdout).find((e) => e.event === 'result') as unknown as { acked: Record<string, string>; missing: string[]; naks: number } | undefined;
    expect(out, result.stderr).toBeDefined();
    expect(out!.missing).toEqual([]);
    const addresses = Object.values(out!.acked);
    expect(addresses).toHaveLength(200);
    expect(new Set(addresses).size).toBe(200);
    expect(addresses.every(inPool)).toBe(true);
    expect(addresses).not.toContain(SQUATTER);
    // Nobody else on this LAN got one of them either (Pis, dhclient, udhcpc, the static client).
    const others = events.filter((e) => e.event === 'lease' && e.state === 'bound' && !String(e.mac).startsWith('02:77:')).map((e) => e.address);
    for (const a of others) expect(addresses).not.toContain(a);
  }, 120_000);

  it('the squatter was found by ping: its address quarantined, never offered', () => {
    expect(events).toContainEqual(expect.objectContaining({ event: 'lease', state: 'conflict', address: SQUATTER }));
    expect(events.filter((e) => e.event === 'lease' && e.state !== 'conflict' && e.address === SQUATTER)).toEqual([]);
    expect(events.filter((e) => e.event === 'check-error')).toEqual([]);
  });

  it('nothing dropped; the lease file holds every binding, each address once', async () => {
    expect(events.filter((e) => e.event === 'dropped')).toEqual([]);
    const onDisk = (await LeaseStore.inStateDir(stateDir).load());
    const bound = onDisk.leases.filter((l) => l.state === 'bound');
    expect(bound.length).toBeGreaterThanOrEqual(200 + 3 + 3);
    expect(new Set(bound.map((l) => l.address)).size).toBe(bound.length);
    expect(serve.exitCode).toBeNull();
  });

  it('a restarted server keeps the leases: the Pi 4 gets its address back', async () => {
    const before = (await LeaseStore.inStateDir(stateDir).load()).leases.find((l) => l.mac === PI4.mac)!;
    await stopProcess(serve);
    ({ child: serve, events } = await startFullServe('sut', serveConfig()));
    await lab.run('pi4', 'ip', ['addr', 'flush', 'dev', 'eth0']);
    await lab.run('pi4', 'ip', ['route', 'replace', '255.255.255.255/32', 'dev', 'eth0']);
    const { lease } = await runClient(lab, 'pi4', { mode: 'discover', profile: 'pi4', mac: PI4.mac, serial: PI4.serial, requestLease: true, listenMs: 3000 });
    expect(lease?.address).toBe(before.address);
  });

  it('with dnsmasq answering on the segment, a full-mode server refuses to start with one line naming it', async () => {
    await stopProcess(serve); // our own first server would be named too (it is one more DHCP server)
    await lab.addHost({ name: 'rtr', address: '10.77.0.1/23' });
    await lab.addHost({ name: 'sut2', address: '10.77.0.3/23' });
    const dnsmasq = lab.spawn('rtr', 'dnsmasq', ['--conf-file=/dev/null', '--no-daemon', '--port=0', '--interface=eth0', '--bind-interfaces', '--dhcp-range=10.77.1.210,10.77.1.250,255.255.254.0,1h', '--log-dhcp', '--log-facility=-', '--pid-file=', `--dhcp-leasefile=${work}/rtr.leases`]);
    await waitForOutput(dnsmasq, /DHCP, IP range/, 10_000);
    const config = { ...serveConfig(), serverIp: '10.77.0.3', stateDir: join(work, 'state2'), tftpRoot: undefined, probeMs: undefined } as unknown as FullServeConfig;
    const result = await lab.run('sut2', process.execPath, [...tsNodeArgs, 'test/dhcp/full-serve.ts', JSON.stringify(config)], { cwd: repoRoot, timeoutMs: 30_000 });
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0], result.stderr).toMatch(/^another DHCP server answers on this segment: 10\.77\.0\.1 offered 10\.77\.1\.2\d\d; refusing --dhcp-mode full/);
  }, 60_000);
});
