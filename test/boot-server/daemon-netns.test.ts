import type { ChildProcess } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, collect, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { Fleet } from '../../packages/fleet/src/index.js';
import { tempDir } from '../../packages/fleet/test/helpers.js';

const CLI = 'packages/boot-server/src/cli.ts';
const PI_MAC = 'b8:27:eb:55:bb:fd'; // derived from serial 9f55bbfd

/**
 * The daemon bin in a namespace LAN with real neighbours: a DHCP server that already owns port 67
 * (dnsmasq), a host whose MAC is a registered Pi's (its IP comes from the kernel's neighbour table),
 * and busybox udhcpc as a plain and as a PXE DHCP client.
 */
describe('boot-server daemon on a namespace LAN', { timeout: 60_000, ...needs('netns', 'dnsmasq', 'busybox', 'curl', 'ping') }, () => {
  let lab: Lab;
  let dir: string;
  let configFile: string;
  let daemon: ChildProcess | undefined;

  beforeAll(async () => {
    dir = tempDir('daemon-netns');
    chmodSync(dir, 0o755);
    const roots = { tftpRoot: join(dir, 'tftpboot'), nfsRoot: join(dir, 'nfs'), stateDir: join(dir, 'state') };
    const fleetKeys = { ...roots, exportsFile: join(dir, 'exports'), serverIp: '10.77.0.2', exportsClients: '10.77.0.0/24' };
    // Registered beforehand (exports not validated here; the e2e and pxetools tests do that).
    const fleet = await Fleet.open({ ...fleetKeys, runner: async () => ({ stdout: '', stderr: '' }) });
    await fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'rpi3', ownFilesystem: true });
    await fleet.close();
    configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ ...fleetKeys, apiPort: 8067, neighbourScanInterval: 1, logLevel: 'info' }));
    lab = await Lab.create([
      { name: 'srv', address: '10.77.0.2/24' },
      { name: 'pi', address: '10.77.0.57/24' },
    ]);
    await lab.run('pi', 'ip', ['link', 'set', 'eth0', 'address', PI_MAC]);
  });

  afterAll(async () => {
    if (daemon) await stopProcess(daemon);
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const api = async (path: string) => {
    const token = readFileSync(join(dir, 'state', 'api-token'), 'utf8').trim();
    const result = await lab.run('srv', 'curl', ['-sS', '-H', `authorization: Bearer ${token}`, `http://127.0.0.1:8067${path}`], {
      timeoutMs: 10_000,
    });
    return result.stdout;
  };

  it('with another DHCP server on port 67, start fails in one line that suggests --no-dhcp', async () => {
    const dnsmasq = lab.spawn('srv', 'dnsmasq', [
      '--conf-file=/dev/null',
      '--no-daemon',
      '--port=0',
      '--interface=eth0',
      '--dhcp-range=10.77.0.100,10.77.0.150',
      '--pid-file=',
      `--dhcp-leasefile=${join(dir, 'leases')}`,
      '--log-facility=-',
    ]);
    try {
      await waitForOutput(dnsmasq, /DHCP, IP range/, 10_000);
      const run = await collect(
        lab.spawn('srv', process.execPath, [...tsNodeArgs, CLI, 'start', '--config', configFile], { cwd: repoRoot }),
        30_000,
      );
      expect(run.code).toBe(1);
      expect(run.stderr.trimEnd().split('\n'), run.stderr).toHaveLength(1);
      expect(run.stderr).toMatch(
        /^boot-server: dhcpPort: cannot bind UDP [\d.]+:67: .*EADDRINUSE.*another DHCP server runs here\? .*--no-dhcp/,
      );
    } finally {
      await stopProcess(dnsmasq);
    }
  });

  it('learns a Pi IP from the neighbour table, counts non-PXE DHCP without streaming it, reports NFS health', async () => {
    daemon = lab.spawn('srv', process.execPath, [...tsNodeArgs, CLI, 'start', '--config', configFile], { cwd: repoRoot });
    await waitForOutput(daemon, /"msg":"serving /, 30_000);
    const token = readFileSync(join(dir, 'state', 'api-token'), 'utf8').trim();
    const events = lab.spawn('srv', 'curl', [
      '-sSN',
      '--max-time',
      '8',
      '-H',
      `authorization: Bearer ${token}`,
      'http://127.0.0.1:8067/api/v1/events',
    ]);
    const streamed = collect(events, 15_000);
    await waitForOutput(events, /iot-tofu events/, 5_000);

    // A plain DHCP client (no PXE options), then a PXE one with the registered Pi's MAC.
    const plain = await lab.run('pi', 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-n', '-q', '-t', '1', '-T', '1', '-s', '/bin/true'], {
      timeoutMs: 10_000,
    });
    expect(plain.code).not.toBe(0); // nobody hands out addresses here
    await lab.run(
      'pi',
      'busybox',
      [
        'udhcpc',
        '-i',
        'eth0',
        '-f',
        '-n',
        '-q',
        '-t',
        '1',
        '-T',
        '1',
        '-V',
        'PXEClient:Arch:00000:UNDI:002001',
        '-x',
        '0x5d:0000',
        '-x',
        '0x5e:010201',
        '-O',
        '43',
        '-s',
        '/bin/true',
      ],
      { timeoutMs: 10_000 },
    );

    // The Pi talks to the server: the kernel learns its MAC, the daemon's next scan its IP.
    expect((await lab.run('pi', 'ping', ['-c', '1', '-W', '2', '10.77.0.2'])).code).toBe(0);
    await expect.poll(async () => JSON.parse(await api('/api/v1/pis/9f55bbfd')).ip, { timeout: 5_000, interval: 250 }).toBe('10.77.0.57');

    await stopProcess(events);
    const stream = (await streamed).stdout;
    expect(stream).toMatch(/^event: offer-sent$/m);
    expect(stream).not.toContain('not-pxe');
    expect(stream).not.toContain('wrong-message-type');
    const metrics = await lab.run('srv', 'curl', ['-sS', 'http://127.0.0.1:8067/metrics']);
    expect(Number(/^iot_tofu_dhcp_ignored_total\{reason="not-pxe"\} (\d+)$/m.exec(metrics.stdout)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);

    const health = JSON.parse((await lab.run('srv', 'curl', ['-sS', 'http://127.0.0.1:8067/healthz'])).stdout);
    expect(health).toMatchObject({
      status: 'ok',
      dhcp: true,
      tftp: true,
      pis: 1,
      nfs: { exportsFile: join(dir, 'exports'), exportsClients: '10.77.0.0/24', nfsdRunning: expect.any(Boolean) },
    });
  });
});
