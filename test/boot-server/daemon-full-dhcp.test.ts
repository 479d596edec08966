import type { ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseStore } from '@iot-tofu/dhcp';
import { Lab, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { runClient } from '../dhcp/lab.js';
import { Fleet } from '../../packages/fleet/src/index.js';
import { tempDir } from '../../packages/fleet/test/helpers.js';

const CLI = 'packages/boot-server/src/cli.ts';
const PI4 = { mac: 'dc:a6:32:01:36:c2', serial: 'ab5a4158' };
/** Registered with a static address (pxetools --add … --ip), below the pool. */
const PI5 = { mac: '2c:cf:67:0a:0b:0c', serial: '5a5a0005', ip: '10.77.0.60' };

/**
 * The daemon bin with `dhcpMode: "full"` (issue 12) as the only DHCP server of a namespace LAN:
 * a plain client (busybox udhcpc) and a registered Pi 4 (scripted bootloader) get addresses from it,
 * the Pi with its boot menu in the same OFFER; leases land in the state dir.
 */
describe('boot-server daemon in full-DHCP mode', { timeout: 90_000, ...needs('netns', 'busybox', 'ping') }, () => {
  let lab: Lab;
  let dir: string;
  let daemon: ChildProcess | undefined;

  beforeAll(async () => {
    dir = tempDir('daemon-full-dhcp');
    chmodSync(dir, 0o755);
    const keys = {
      tftpRoot: join(dir, 'tftpboot'),
      nfsRoot: join(dir, 'nfs'),
      stateDir: join(dir, 'state'),
      exportsFile: join(dir, 'exports'),
      serverIp: '10.77.0.2',
      exportsClients: '10.77.0.0/24',
    };
    const fleet = await Fleet.open({ ...keys, runner: async () => ({ stdout: '', stderr: '' }) });
    await fleet.add({ serial: PI4.serial, owner: 'jo', name: 'rpi4', ownFilesystem: true });
    await fleet.add({ serial: PI5.serial, owner: 'jo', name: 'rpi5', ownFilesystem: true, mac: PI5.mac, ip: PI5.ip });
    await fleet.close();
    const configFile = join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        ...keys,
        apiPort: 0,
        logLevel: 'info',
        dhcpMode: 'full',
        dhcpRange: '10.77.0.100-10.77.0.150',
        dhcpNetmask: '255.255.255.0',
        dhcpRouter: '10.77.0.1',
        dhcpLeaseTime: 600,
      }),
    );
    lab = await Lab.create([{ name: 'srv', address: '10.77.0.2/24' }, { name: 'cli' }, { name: 'pi4' }, { name: 'pi5' }]);
    await lab.run('pi4', 'ip', ['link', 'set', 'eth0', 'address', PI4.mac]);
    await lab.run('pi5', 'ip', ['link', 'set', 'eth0', 'address', PI5.mac]);
    daemon = lab.spawn('srv', process.execPath, [...tsNodeArgs, CLI, 'start', '--config', configFile], { cwd: repoRoot });
    await waitForOutput(daemon, /"msg":"serving /, 40_000);
  });

  afterAll(async () => {
    if (daemon) await stopProcess(daemon);
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a plain DHCP client gets a lease from the daemon', async () => {
    const result = await lab.run('cli', 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-n', '-q', '-t', '5', '-T', '2', '-s', '/bin/true'], {
      timeoutMs: 30_000,
    });
    expect(result.stdout + result.stderr).toMatch(/lease of 10\.77\.0\.1[0-5]\d obtained from 10\.77\.0\.2/);
  });

  it('a registered Pi 4 gets an address and the Pi boot menu in one OFFER; the lease is in the state dir', async () => {
    const { replies, lease } = await runClient(lab, 'pi4', {
      mode: 'discover',
      profile: 'pi4',
      mac: PI4.mac,
      serial: PI4.serial,
      requestLease: true,
      listenMs: 3000,
    });
    const offer = replies.find((r) => r.type === 'offer');
    expect(offer).toMatchObject({ serverId: '10.77.0.2', piBoot: true });
    expect(offer!.yiaddr).toMatch(/^10\.77\.0\.1[0-5]\d$/);
    expect(lease).toMatchObject({ address: offer!.yiaddr, server: '10.77.0.2' });
    const onDisk = await LeaseStore.inStateDir(join(dir, 'state')).load();
    expect(onDisk.leases).toContainEqual(
      expect.objectContaining({ mac: PI4.mac, address: offer!.yiaddr, state: 'bound', serial: PI4.serial }),
    );
    // The bound address reaches the registry's learned facts (what --list shows), flushed within seconds.
    let learned: string | null = null;
    for (let i = 0; i < 50 && learned !== offer!.yiaddr; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const fleet = await Fleet.open({
        tftpRoot: join(dir, 'tftpboot'),
        nfsRoot: join(dir, 'nfs'),
        stateDir: join(dir, 'state'),
        exportsFile: join(dir, 'exports'),
        serverIp: '10.77.0.2',
        exportsClients: '10.77.0.0/24',
        isRoot: () => false,
      });
      learned = fleet.get(PI4.serial).ip;
      await fleet.close();
    }
    expect(learned).toBe(offer!.yiaddr);
  });

  it('a Pi registered with --ip gets its static address, not one from the pool', async () => {
    const { replies, lease } = await runClient(lab, 'pi5', {
      mode: 'discover',
      profile: 'pi5',
      mac: PI5.mac,
      serial: PI5.serial,
      requestLease: true,
      listenMs: 3000,
    });
    const offer = replies.find((r) => r.type === 'offer');
    expect(offer).toMatchObject({ serverId: '10.77.0.2', piBoot: true, yiaddr: PI5.ip });
    expect(lease).toMatchObject({ address: PI5.ip, server: '10.77.0.2' });
  });
});
