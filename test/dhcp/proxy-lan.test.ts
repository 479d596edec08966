import { createHash, randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { runClient, startServe, startSiteRouter, type JsonEvent } from './lab.js';
import { goldenPiOfferHex } from './expected.js';

/**
 * docs/lab.md (a): a dnsmasq that only hands out addresses plays the site router (10.77.0.1); our
 * proxy + TFTP run on a host whose primary address is 10.77.0.9 and whose *secondary* address
 * 10.77.0.2 is the configured server IP, so every reply must leave from 10.77.0.2 (= option 54),
 * not from the address the kernel would pick on its own.
 */
const S = '10.77.0.2';
const PI4 = { mac: 'dc:a6:32:01:36:c2', serial: 'ab5a4158' };
const PI5 = { mac: '2c:cf:67:00:00:05', serial: '1f2e3d4c' };
const PI3 = { mac: 'b8:27:eb:64:24:7d' };
const STRANGER_PI = { mac: 'e4:5f:01:00:00:77', serial: '77777777' };
const PLAIN_CLIENT_MAC = '02:00:00:00:0c:01'; // the router ignores it: only our proxy may answer

describe('proxyDHCP beside a site DHCP server (network namespaces)', needs('netns', 'dnsmasq', 'busybox', 'dhclient'), () => {
  let lab: Lab;
  let work: string;
  let serveEvents: JsonEvent[];
  let serve: ChildProcess;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tofu-dhcp-lan-'));
    const root = join(work, 'tftp');
    for (const [name, size] of [
      [`${PI4.serial}/start4.elf`, 300_000],
      [`${PI5.serial}/config.txt`, 2_000],
      ['bootcode.bin', 52_000],
      ['undionly.kpxe', 70_000],
    ] as const) {
      const bytes = randomBytes(size);
      mkdirSync(join(root, name, '..'), { recursive: true });
      writeFileSync(join(root, name), bytes);
      files.set(name, bytes);
    }
    lab = await Lab.create([
      { name: 'router', address: '10.77.0.1/24' },
      { name: 'sut', address: '10.77.0.9/24' },
      { name: 'pi3' },
      { name: 'pi4' },
      { name: 'pi5' },
      { name: 'cli' },
      { name: 'peer', address: '10.77.0.50/24' },
    ]);
    await lab.run('sut', 'ip', ['addr', 'add', `${S}/24`, 'dev', 'eth0']);
    for (const [host, mac] of [['pi3', PI3.mac], ['pi4', PI4.mac], ['pi5', PI5.mac], ['cli', PLAIN_CLIENT_MAC]]) {
      await lab.run(host!, 'ip', ['link', 'set', 'eth0', 'address', mac!]);
    }
    const router = startSiteRouter(lab, 'router', work, [`--dhcp-host=${PLAIN_CLIENT_MAC},ignore`, `--dhcp-host=${STRANGER_PI.mac},ignore`]);
    await waitForOutput(router, /DHCP, IP range/, 10_000);
    ({ child: serve, events: serveEvents } = await startServe(lab, 'sut', {
      serverIp: S,
      answer: 'registered',
      registeredMacs: [PI3.mac],
      registeredSerials: [PI4.serial, PI5.serial],
      pxe: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi' },
      pi3RepeatDelayMs: 300,
      tftpRoot: root,
    }));
  });

  afterAll(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function tftpGet(host: string, file: string, blksize?: number): Promise<Buffer> {
    const out = join(work, `${host}-${file.replaceAll('/', '_')}`);
    const args = ['tftp', ...(blksize ? ['-b', String(blksize)] : []), '-g', '-r', file, '-l', out, S];
    const result = await lab.run(host, 'busybox', args, { timeoutMs: 15_000 });
    if (result.code !== 0) throw new Error(`busybox tftp ${file}: ${result.stderr}`);
    return readFileSync(out);
  }

  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it.each([
    ['Pi 4', 'pi4', PI4, `${PI4.serial}/start4.elf`, 1468],
    ['Pi 5', 'pi5', PI5, `${PI5.serial}/config.txt`, 1468],
  ] as const)('%s: address from the router, Pi offer from us, then TFTP from the same server', async (_name, profile, pi, file, blksize) => {
    const { replies, lease } = await runClient(lab, profile, { mode: 'discover', profile, mac: pi.mac, serial: pi.serial, requestLease: true, listenMs: 1500 });
    const proxy = replies.filter((r) => r.serverId === S);
    const router = replies.filter((r) => r.serverId === '10.77.0.1');
    expect(proxy).toHaveLength(1);
    expect(proxy[0]).toMatchObject({ from: `${S}:67`, type: 'offer', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', flags: 0x8000, vendorClass: 'PXEClient', piBoot: true, file: '' });
    expect(proxy[0]!.option97).toMatch(new RegExp(`^00${Buffer.from(profile === 'pi4' ? 'RPi4' : 'RPi5').toString('hex')}`));
    expect(router.some((r) => r.type === 'offer' && r.yiaddr !== '0.0.0.0' && !r.piBoot)).toBe(true);
    expect(lease?.server).toBe('10.77.0.1');
    await lab.run(profile, 'ip', ['addr', 'add', `${lease!.address}/24`, 'dev', 'eth0']);
    expect(sha(await tftpGet(profile, file, blksize))).toBe(sha(files.get(file)!));
    expect(serveEvents).toContainEqual(expect.objectContaining({ event: 'pi-seen', mac: pi.mac, serial: pi.serial, model: profile, answered: true }));
  });

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
    const { replies } = await runClient(lab, 'cli', { mode: 'discover', profile: 'pi4', mac: STRANGER_PI.mac, serial: STRANGER_PI.serial, listenMs: 800 });
    expect(replies).toEqual([]);
    expect(serveEvents).toContainEqual(expect.objectContaining({ event: 'pi-seen', mac: STRANGER_PI.mac, serial: STRANGER_PI.serial, answered: false }));
    expect(serveEvents).toContainEqual(expect.objectContaining({ event: 'ignored', mac: STRANGER_PI.mac, reason: 'pi-not-registered' }));
  });

  it('a BIOS PXE client gets its boot file with skip-discovery, never the Pi menu', async () => {
    const { replies } = await runClient(lab, 'cli', { mode: 'discover', profile: 'bios', mac: PLAIN_CLIENT_MAC, listenMs: 800 });
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ from: `${S}:67`, serverId: S, yiaddr: '0.0.0.0', siaddr: S, sname: S, file: 'undionly.kpxe', option43: '060108ff', piBoot: false });
  });

  it('a UEFI REQUEST to 4011 from port 4011 (edk2) gets the ACK from 10.77.0.2:4011 back to port 4011', async () => {
    const { replies } = await runClient(lab, 'peer', { mode: 'request4011', profile: 'uefi-x64', mac: '52:54:00:77:00:31', server: S, ciaddr: '10.77.0.50', sourcePort: 4011, listenMs: 800 });
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ from: `${S}:4011`, type: 'ack', ciaddr: '10.77.0.50', yiaddr: '0.0.0.0', siaddr: S, file: 'ipxe.efi', piBoot: false });
    expect(replies[0]!.option43).toBeUndefined();
  });

  it('a relayed DISCOVER (giaddr set, unicast to 10.77.0.2:67) is answered by unicast to the relay on port 67', async () => {
    const { replies } = await runClient(lab, 'peer', { mode: 'relay', profile: 'pi4', mac: PI4.mac, serial: PI4.serial, server: S, sourceAddress: '10.77.0.50', listenMs: 800 });
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ from: `${S}:67`, type: 'offer', piBoot: true, yiaddr: '0.0.0.0' });
    expect(Buffer.from(replies[0]!.hex, 'hex').subarray(24, 28).join('.')).toBe('10.77.0.50'); // giaddr copied
  });

  it('busybox udhcpc with options 60 and 93 receives the proxy offer; without them it gets nothing', async () => {
    const udhcpc = (extra: string[]) =>
      lab.run('cli', 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-n', '-q', '-t', '1', '-T', '1', ...extra, '-s', '/bin/true'], { timeoutMs: 10_000 });
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
    const child = lab.spawn('cli', 'dhclient', ['-4', '-d', '-1', '-v', '-cf', conf, '-lf', join(work, 'dhclient.leases'), '-pf', join(work, 'dhclient.pid'), '-sf', '/bin/true', 'eth0']);
    try {
      await expect(waitForOutput(child, new RegExp(`DHCPOFFER of 0\\.0\\.0\\.0 from ${S.replaceAll('.', '\\.')}`), 10_000)).resolves.toBeTruthy();
    } finally {
      await stopProcess(child);
    }
  });

  it('refuses to start next to a DHCP server on the same host (dnsmasq holds 67 with SO_REUSEADDR)', async () => {
    const result = await lab.run('router', process.execPath, [...tsNodeArgs, 'test/dhcp/serve.ts', JSON.stringify({ serverIp: '10.77.0.1', answer: 'any-pi' })], { cwd: repoRoot, timeoutMs: 20_000 });
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
