import { createHash, randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseStore } from '@iot-tofu/dhcp';
import { Lab, repoRoot, stopProcess, tsNodeArgs, waitForOutput, type LabHostSpec } from '../lab/index.js';
import { needs } from '../needs.js';
import { parseJsonLines, runClient, serveArgs, startServe, startSiteRouter, type JsonEvent } from './lab.js';
import { goldenPiOfferHex } from './expected.js';
import type { FullServeConfig } from './serve.js';

/**
 * Our DHCP server on a LAN of network namespaces, with real clients (dhclient, busybox udhcpc,
 * busybox tftp) and scripted Pi 3B/4/5 bootloaders, in its two modes (test/dhcp/serve.ts):
 *
 * proxy (docs/lab.md (a)): a dnsmasq that only hands out addresses plays the site router
 *   (10.77.0.1); our proxy + TFTP run on a host whose primary address is 10.77.0.9 and whose
 *   *secondary* address 10.77.0.2 is the configured server IP, so every reply must leave from
 *   10.77.0.2 (= option 54), not from the address the kernel would pick on its own.
 *
 * full (issue 12): a dedicated region LAN with our server as its only DHCP server. Full mode
 *   (10.77.0.2, pool 10.77.0.100-10.77.1.200 on a /23, lease file in a temp state dir, ping conflict
 *   check) serves dhclient, udhcpc, the Pis (address + Pi menu in one reply, then TFTP from us) and
 *   200 simulated clients at once. A host squatting on 10.77.0.100 without a lease must be skipped
 *   (ping). Last, a dnsmasq started on the segment makes a second full-mode server refuse to start.
 */
const S = '10.77.0.2';
const PI4 = { mac: 'dc:a6:32:01:36:c2', serial: 'ab5a4158' };
const PI5 = { mac: '2c:cf:67:00:00:05', serial: '1f2e3d4c' };
const PI3 = { mac: 'b8:27:eb:64:24:7d' };

/** A throw-away LAN: a work folder, a TFTP tree of random files, the hosts (eth0 MACs set). */
async function openLan(name: string, tree: [string, number][], hosts: LabHostSpec[], macs: [string, string][]) {
  const work = mkdtempSync(join(tmpdir(), `tofu-dhcp-${name}-`));
  const files = new Map<string, Buffer>();
  for (const [file, size] of tree) {
    const bytes = randomBytes(size);
    mkdirSync(join(work, 'tftp', file, '..'), { recursive: true });
    writeFileSync(join(work, 'tftp', file), bytes);
    files.set(file, bytes);
  }
  const lab = await Lab.create(hosts);
  for (const [host, mac] of macs) await lab.run(host, 'ip', ['link', 'set', 'eth0', 'address', mac]);
  return { lab, work, files };
}

/** A file fetched from S with busybox tftp in `host` (optionally with a blksize option). */
async function busyboxTftp(lab: Lab, work: string, host: string, file: string, blksize?: number): Promise<Buffer> {
  const out = join(work, `${host}-${file.replaceAll('/', '_')}`);
  const args = ['tftp', ...(blksize ? ['-b', String(blksize)] : []), '-g', '-r', file, '-l', out, S];
  const result = await lab.run(host, 'busybox', args, { timeoutMs: 15_000 });
  if (result.code !== 0) throw new Error(`busybox tftp ${file}: ${result.stderr}`);
  return readFileSync(out);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const STRANGER_PI = { mac: 'e4:5f:01:00:00:77', serial: '77777777' };
const PLAIN_CLIENT_MAC = '02:00:00:00:0c:01'; // the router ignores it: only our proxy may answer

describe('proxyDHCP beside a site DHCP server (network namespaces)', needs('netns', 'dnsmasq', 'busybox', 'dhclient'), () => {
  let lab: Lab;
  let work: string;
  let serveEvents: JsonEvent[];
  let serve: ChildProcess;
  let files: Map<string, Buffer>;

  beforeAll(async () => {
    const tree: [string, number][] = [
      [`${PI4.serial}/start4.elf`, 300_000],
      [`${PI5.serial}/config.txt`, 2_000],
      ['bootcode.bin', 52_000],
      ['undionly.kpxe', 70_000],
    ];
    const hosts = [
      { name: 'router', address: '10.77.0.1/24' },
      { name: 'sut', address: '10.77.0.9/24' },
      ...['pi3', 'pi4', 'pi5', 'cli'].map((name) => ({ name })),
      { name: 'peer', address: '10.77.0.50/24' },
    ];
    const macs: [string, string][] = [
      ['pi3', PI3.mac],
      ['pi4', PI4.mac],
      ['pi5', PI5.mac],
      ['cli', PLAIN_CLIENT_MAC],
    ];
    ({ lab, work, files } = await openLan('proxy-lan', tree, hosts, macs));
    await lab.run('sut', 'ip', ['addr', 'add', `${S}/24`, 'dev', 'eth0']);
    const router = startSiteRouter(lab, 'router', work, [
      `--dhcp-host=${PLAIN_CLIENT_MAC},ignore`,
      `--dhcp-host=${STRANGER_PI.mac},ignore`,
    ]);
    await waitForOutput(router, /DHCP, IP range/, 10_000);
    ({ child: serve, events: serveEvents } = await startServe(lab, 'sut', {
      serverIp: S,
      answer: 'registered',
      registeredMacs: [PI3.mac],
      registeredSerials: [PI4.serial, PI5.serial],
      pxe: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi' },
      pi3RepeatDelayMs: 300,
      tftpRoot: join(work, 'tftp'),
    }));
  });

  afterAll(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const tftpGet = (host: string, file: string, blksize?: number) => busyboxTftp(lab, work, host, file, blksize);

  it.each([
    ['Pi 4', 'pi4', PI4, `${PI4.serial}/start4.elf`, 1468],
    ['Pi 5', 'pi5', PI5, `${PI5.serial}/config.txt`, 1468],
  ] as const)(
    '%s: address from the router, Pi offer from us, then TFTP from the same server',
    async (_name, profile, pi, file, blksize) => {
      const { replies, lease } = await runClient(lab, profile, {
        mode: 'discover',
        profile,
        mac: pi.mac,
        serial: pi.serial,
        requestLease: true,
        listenMs: 1500,
      });
      const proxy = replies.filter((r) => r.serverId === S);
      const router = replies.filter((r) => r.serverId === '10.77.0.1');
      expect(proxy).toHaveLength(1);
      expect(proxy[0]).toMatchObject({
        from: `${S}:67`,
        type: 'offer',
        yiaddr: '0.0.0.0',
        siaddr: '0.0.0.0',
        flags: 0x8000,
        vendorClass: 'PXEClient',
        piBoot: true,
        file: '',
      });
      expect(proxy[0]!.option97).toMatch(new RegExp(`^00${Buffer.from(profile === 'pi4' ? 'RPi4' : 'RPi5').toString('hex')}`));
      expect(router.some((r) => r.type === 'offer' && r.yiaddr !== '0.0.0.0' && !r.piBoot)).toBe(true);
      expect(lease?.server).toBe('10.77.0.1');
      await lab.run(profile, 'ip', ['addr', 'add', `${lease!.address}/24`, 'dev', 'eth0']);
      expect(sha(await tftpGet(profile, file, blksize))).toBe(sha(files.get(file)!));
      expect(serveEvents).toContainEqual(
        expect.objectContaining({ event: 'pi-seen', mac: pi.mac, serial: pi.serial, model: profile, answered: true }),
      );
    },
  );

  it('Pi 3B ROM: golden-shaped DISCOVER gets the dnsmasq-identical offer twice, then bootcode.bin over plain TFTP', async () => {
    const { replies } = await runClient(lab, 'pi3', { mode: 'discover', profile: 'pi3b', mac: PI3.mac, listenMs: 1200 });
    const proxy = replies.filter((r) => r.serverId === S);
    expect(proxy).toHaveLength(2); // the offer and its repeat 300 ms later
    expect(proxy[0]).toMatchObject({ from: `${S}:67`, xid: 0x26f30339, piBoot: true, bytes: 314 });
    // Same request bytes as the reference capture, so the same reply bytes as dnsmasq (but our option 54).
    expect(proxy[0]!.hex).toBe(goldenPiOfferHex(S));
    expect(proxy[1]).toEqual(proxy[0]);
    const offer = replies.find((r) => r.serverId === '10.77.0.1' && r.type === 'offer');
    expect(offer?.yiaddr).toMatch(/^10\.77\.0\.1\d\d$/);
    // The Pi 3 ROM uses the OFFER directly (no REQUEST) and fetches bootcode.bin without options.
    await lab.run('pi3', 'ip', ['addr', 'add', `${offer!.yiaddr}/24`, 'dev', 'eth0']);
    expect(sha(await tftpGet('pi3', 'bootcode.bin'))).toBe(sha(files.get('bootcode.bin')!));
  });

  it('an unregistered Pi gets no offer but is reported as seen (registered mode)', async () => {
    const { replies } = await runClient(lab, 'cli', {
      mode: 'discover',
      profile: 'pi4',
      mac: STRANGER_PI.mac,
      serial: STRANGER_PI.serial,
      listenMs: 800,
    });
    expect(replies).toEqual([]);
    expect(serveEvents).toContainEqual(
      expect.objectContaining({ event: 'pi-seen', mac: STRANGER_PI.mac, serial: STRANGER_PI.serial, answered: false }),
    );
    expect(serveEvents).toContainEqual(expect.objectContaining({ event: 'ignored', mac: STRANGER_PI.mac, reason: 'pi-not-registered' }));
  });

  it('a BIOS PXE client gets its boot file with skip-discovery, never the Pi menu', async () => {
    const { replies } = await runClient(lab, 'cli', { mode: 'discover', profile: 'bios', mac: PLAIN_CLIENT_MAC, listenMs: 800 });
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({
      from: `${S}:67`,
      serverId: S,
      yiaddr: '0.0.0.0',
      siaddr: S,
      sname: S,
      file: 'undionly.kpxe',
      option43: '060108ff',
      piBoot: false,
    });
  });

  it('a UEFI REQUEST to 4011 from port 4011 (edk2) gets the ACK from 10.77.0.2:4011 back to port 4011', async () => {
    const { replies } = await runClient(lab, 'peer', {
      mode: 'request4011',
      profile: 'uefi-x64',
      mac: '52:54:00:77:00:31',
      server: S,
      ciaddr: '10.77.0.50',
      sourcePort: 4011,
      listenMs: 800,
    });
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({
      from: `${S}:4011`,
      type: 'ack',
      ciaddr: '10.77.0.50',
      yiaddr: '0.0.0.0',
      siaddr: S,
      file: 'ipxe.efi',
      piBoot: false,
    });
    expect(replies[0]!.option43).toBeUndefined();
  });

  it('a relayed DISCOVER (giaddr set, unicast to 10.77.0.2:67) is answered by unicast to the relay on port 67', async () => {
    const { replies } = await runClient(lab, 'peer', {
      mode: 'relay',
      profile: 'pi4',
      mac: PI4.mac,
      serial: PI4.serial,
      server: S,
      sourceAddress: '10.77.0.50',
      listenMs: 800,
    });
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ from: `${S}:67`, type: 'offer', piBoot: true, yiaddr: '0.0.0.0' });
    expect(Buffer.from(replies[0]!.hex, 'hex').subarray(24, 28).join('.')).toBe('10.77.0.50'); // giaddr copied
  });

  it('busybox udhcpc with options 60 and 93 receives the proxy offer; without them it gets nothing', async () => {
    const udhcpc = (extra: string[]) =>
      lab.run('cli', 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-n', '-q', '-t', '1', '-T', '1', ...extra, '-s', '/bin/true'], {
        timeoutMs: 10_000,
      });
    const pxe = await udhcpc(['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000', '-x', '0x5e:010201', '-O', '43']);
    expect(pxe.stdout + pxe.stderr).toContain(`select for 0.0.0.0, server ${S}`);
    const plain = await udhcpc([]);
    expect(plain.stdout + plain.stderr).not.toContain(`server ${S}`);
  });

  it('dhclient sending options 60 and 93 receives the proxy offer', async () => {
    const conf = join(work, 'dhclient.conf');
    writeFileSync(
      conf,
      [
        'option pxe-arch code 93 = unsigned integer 16;',
        'option pxe-nii code 94 = string;',
        'send vendor-class-identifier "PXEClient:Arch:00000:UNDI:002001";',
        'send pxe-arch 0;',
        'send pxe-nii 01:02:01;',
        'request subnet-mask, routers, vendor-encapsulated-options, vendor-class-identifier;',
        'timeout 6; retry 60; initial-interval 1;',
        '',
      ].join('\n'),
    );
    const child = lab.spawn('cli', 'dhclient', [
      '-4',
      '-d',
      '-1',
      '-v',
      '-cf',
      conf,
      '-lf',
      join(work, 'dhclient.leases'),
      '-pf',
      join(work, 'dhclient.pid'),
      '-sf',
      '/bin/true',
      'eth0',
    ]);
    try {
      await expect(
        waitForOutput(child, new RegExp(`DHCPOFFER of 0\\.0\\.0\\.0 from ${S.replaceAll('.', '\\.')}`), 10_000),
      ).resolves.toBeTruthy();
    } finally {
      await stopProcess(child);
    }
  });

  it('refuses to start next to a DHCP server on the same host (dnsmasq holds 67 with SO_REUSEADDR)', async () => {
    const result = await lab.run('router', process.execPath, serveArgs({ serverIp: '10.77.0.1', answer: 'any-pi' }), {
      cwd: repoRoot,
      timeoutMs: 20_000,
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/DHCP_BIND_FAILED|cannot bind UDP 0\.0\.0\.0:67/);
  });

  it('nothing was dropped and every reply left from the configured address', async () => {
    expect(serveEvents.filter((e) => e.event === 'dropped')).toEqual([]);
    const sent = serveEvents.filter((e) => e.event === 'offer-sent');
    expect(sent.length).toBeGreaterThanOrEqual(7);
    expect(serve.exitCode).toBeNull();
  });
});

const SQUATTER = '10.77.0.100';
const STATIC_MAC = '02:00:00:00:5a:01';
const STATIC_IP = '10.77.0.20';
const n = (a: string) => a.split('.').reduce((v, part) => v * 256 + Number(part), 0);
/** In the dynamic range (a /23: 10.77.0.255 and 10.77.1.0 are ordinary host addresses). */
const inPool = (a: string) => /^\d+\.\d+\.\d+\.\d+$/.test(a) && n(a) >= n('10.77.0.100') && n(a) <= n('10.77.1.200');

describe('full-DHCP mode on a dedicated LAN, no other DHCP server (network namespaces)', {
  timeout: 180_000,
  ...needs('netns', 'busybox', 'dhclient', 'ping', 'dnsmasq'),
}, () => {
  let lab: Lab;
  let work: string;
  let stateDir: string;
  let serve: ChildProcess;
  let events: JsonEvent[];
  let files: Map<string, Buffer>;

  const serveConfig = (): FullServeConfig => ({
    mode: 'full',
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

  beforeAll(async () => {
    const tree: [string, number][] = [
      [`${PI4.serial}/start4.elf`, 200_000],
      [`${PI5.serial}/config.txt`, 2_000],
      ['bootcode.bin', 52_000],
    ];
    const hosts = [
      { name: 'sut', address: `${S}/23` },
      { name: 'squat', address: `${SQUATTER}/23` },
      ...['pi3', 'pi4', 'pi5', 'dhc', 'udh', 'stat', 'many'].map((name) => ({ name })),
    ];
    const macs: [string, string][] = [
      ['pi3', PI3.mac],
      ['pi4', PI4.mac],
      ['pi5', PI5.mac],
      ['stat', STATIC_MAC],
    ];
    ({ lab, work, files } = await openLan('full-lan', tree, hosts, macs));
    stateDir = join(work, 'state');
    mkdirSync(stateDir);
    ({ child: serve, events } = await startServe(lab, 'sut', serveConfig()));
  });

  afterAll(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const tftpGet = (host: string, file: string) => busyboxTftp(lab, work, host, file, 1468);

  it.each([
    ['Pi 4', 'pi4', PI4, `${PI4.serial}/start4.elf`],
    ['Pi 5', 'pi5', PI5, `${PI5.serial}/config.txt`],
  ] as const)('%s: address and Pi boot menu in one OFFER from us, REQUEST → ACK, then TFTP from us', async (_name, profile, pi, file) => {
    const { replies, lease } = await runClient(lab, profile, {
      mode: 'discover',
      profile,
      mac: pi.mac,
      serial: pi.serial,
      requestLease: true,
      listenMs: 3000,
    });
    const offer = replies.find((r) => r.type === 'offer');
    expect(offer).toMatchObject({ from: `${S}:67`, serverId: S, piBoot: true, vendorClass: 'PXEClient', siaddr: S });
    expect(inPool(offer!.yiaddr)).toBe(true);
    expect(offer!.yiaddr).not.toBe(SQUATTER);
    expect(replies.every((r) => r.serverId === S)).toBe(true); // nobody else on this LAN
    expect(lease).toMatchObject({ address: offer!.yiaddr, server: S });
    await lab.run(profile, 'ip', ['addr', 'add', `${lease!.address}/23`, 'dev', 'eth0']);
    expect(sha(await tftpGet(profile, file))).toBe(sha(files.get(file)!));
    expect(events).toContainEqual(
      expect.objectContaining({ event: 'lease', mac: pi.mac, state: 'bound', address: lease!.address, serial: pi.serial }),
    );
  });

  it('Pi 3B ROM: the OFFER (address + menu, repeated) is its lease; bootcode.bin over TFTP from that address', async () => {
    const { replies } = await runClient(lab, 'pi3', { mode: 'discover', profile: 'pi3b', mac: PI3.mac, listenMs: 2500 });
    const offers = replies.filter((r) => r.type === 'offer');
    expect(offers).toHaveLength(2);
    expect(offers[0]).toMatchObject({ xid: 0x26f30339, piBoot: true, serverId: S });
    expect(offers[1]!.hex).toBe(offers[0]!.hex);
    await lab.run('pi3', 'ip', ['addr', 'add', `${offers[0]!.yiaddr}/23`, 'dev', 'eth0']);
    expect(sha(await tftpGet('pi3', 'bootcode.bin'))).toBe(sha(files.get('bootcode.bin')!));
    const onDisk = await LeaseStore.inStateDir(stateDir).load();
    expect(onDisk.leases).toContainEqual(expect.objectContaining({ mac: PI3.mac, address: offers[0]!.yiaddr, state: 'bound' }));
  });

  it('dhclient gets a lease with our mask, router and DNS', async () => {
    const conf = join(work, 'dhclient.conf');
    writeFileSync(
      conf,
      'request subnet-mask, broadcast-address, routers, domain-name-servers;\ntimeout 20; retry 60; initial-interval 1;\n',
    );
    const leases = join(work, 'dhclient.leases');
    const child = lab.spawn('dhc', 'dhclient', [
      '-4',
      '-d',
      '-1',
      '-v',
      '-cf',
      conf,
      '-lf',
      leases,
      '-pf',
      join(work, 'dhclient.pid'),
      '-sf',
      '/bin/true',
      'eth0',
    ]);
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
    const result = await lab.run('udh', 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-n', '-q', '-t', '5', '-T', '2', '-s', '/bin/true'], {
      timeoutMs: 30_000,
    });
    const match = /lease of (10\.77\.\d+\.\d+) obtained from 10\.77\.0\.2/.exec(result.stdout + result.stderr);
    expect(match, result.stdout + result.stderr).not.toBeNull();
    expect(inPool(match![1]!)).toBe(true);
  });

  it('a static address (staticAddressFor) outside the pool goes to its client', async () => {
    const result = await lab.run('stat', 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-n', '-q', '-t', '5', '-T', '2', '-s', '/bin/true'], {
      timeoutMs: 30_000,
    });
    expect(result.stdout + result.stderr).toContain(`lease of ${STATIC_IP} obtained from ${S}`);
  });

  it('200 simulated clients at once get 200 distinct addresses from the pool, never the squatted one', async () => {
    const result = await lab.run(
      'many',
      process.execPath,
      [...tsNodeArgs, 'test/dhcp/many-clients.ts', JSON.stringify({ count: 200, deadlineMs: 60_000 })],
      { cwd: repoRoot, timeoutMs: 90_000 },
    );
    const out = parseJsonLines(result.stdout).find((e) => e.event === 'result') as unknown as
      | { acked: Record<string, string>; missing: string[]; naks: number }
      | undefined;
    expect(out, result.stderr).toBeDefined();
    expect(out!.missing).toEqual([]);
    const addresses = Object.values(out!.acked);
    expect(addresses).toHaveLength(200);
    expect(new Set(addresses).size).toBe(200);
    expect(addresses.every(inPool)).toBe(true);
    expect(addresses).not.toContain(SQUATTER);
    // Nobody else on this LAN got one of them either (Pis, dhclient, udhcpc, the static client).
    const others = events
      .filter((e) => e.event === 'lease' && e.state === 'bound' && !String(e.mac).startsWith('02:77:'))
      .map((e) => e.address);
    for (const a of others) expect(addresses).not.toContain(a);
  }, 120_000);

  it('the squatter was found by ping: its address quarantined, never offered', () => {
    expect(events).toContainEqual(expect.objectContaining({ event: 'lease', state: 'conflict', address: SQUATTER }));
    expect(events.filter((e) => e.event === 'lease' && e.state !== 'conflict' && e.address === SQUATTER)).toEqual([]);
    expect(events.filter((e) => e.event === 'check-error')).toEqual([]);
  });

  it('nothing dropped; the lease file holds every binding, each address once', async () => {
    expect(events.filter((e) => e.event === 'dropped')).toEqual([]);
    const onDisk = await LeaseStore.inStateDir(stateDir).load();
    const bound = onDisk.leases.filter((l) => l.state === 'bound');
    expect(bound.length).toBeGreaterThanOrEqual(200 + 3 + 3);
    expect(new Set(bound.map((l) => l.address)).size).toBe(bound.length);
    expect(serve.exitCode).toBeNull();
  });

  it('a restarted server keeps the leases: the Pi 4 gets its address back', async () => {
    const before = (await LeaseStore.inStateDir(stateDir).load()).leases.find((l) => l.mac === PI4.mac)!;
    await stopProcess(serve);
    ({ child: serve, events } = await startServe(lab, 'sut', serveConfig()));
    await lab.run('pi4', 'ip', ['addr', 'flush', 'dev', 'eth0']);
    await lab.run('pi4', 'ip', ['route', 'replace', '255.255.255.255/32', 'dev', 'eth0']);
    const { lease } = await runClient(lab, 'pi4', {
      mode: 'discover',
      profile: 'pi4',
      mac: PI4.mac,
      serial: PI4.serial,
      requestLease: true,
      listenMs: 3000,
    });
    expect(lease?.address).toBe(before.address);
  });

  it('with dnsmasq answering on the segment, a full-mode server refuses to start with one line naming it', async () => {
    await stopProcess(serve); // our own first server would be named too (it is one more DHCP server)
    await lab.addHost({ name: 'rtr', address: '10.77.0.1/23' });
    await lab.addHost({ name: 'sut2', address: '10.77.0.3/23' });
    const dnsmasq = lab.spawn('rtr', 'dnsmasq', [
      '--conf-file=/dev/null',
      '--no-daemon',
      '--port=0',
      '--interface=eth0',
      '--bind-interfaces',
      '--dhcp-range=10.77.1.210,10.77.1.250,255.255.254.0,1h',
      '--log-dhcp',
      '--log-facility=-',
      '--pid-file=',
      `--dhcp-leasefile=${work}/rtr.leases`,
    ]);
    await waitForOutput(dnsmasq, /DHCP, IP range/, 10_000);
    const { tftpRoot: _tftp, probeMs: _probe, ...config } = { ...serveConfig(), serverIp: '10.77.0.3', stateDir: join(work, 'state2') };
    const result = await lab.run('sut2', process.execPath, serveArgs(config), { cwd: repoRoot, timeoutMs: 30_000 });
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0], result.stderr).toMatch(
      /^another DHCP server answers on this segment: 10\.77\.0\.1 offered 10\.77\.1\.2\d\d; refusing --dhcp-mode full/,
    );
  }, 60_000);
});
