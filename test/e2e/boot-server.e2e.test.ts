import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExports } from '@iot-tofu/nfs-server-lite';
import { simulatedIdentities, type PiReport, type StormSummary } from '@iot-tofu/rpi-sim';
import { repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { applyProfile, createStormLab, PROFILES, SERVER_IP, type StormLab } from '../../bench/storm/topology.js';
import { fleetFixture, type FleetFixture } from '../../packages/boot-server/test/fleet-fixture.js';

interface SimOutput {
  summary: StormSummary;
  reports: PiReport[];
}

const KERNEL_BYTES = 3_000_000;
const OVMF = '/usr/share/ovmf/OVMF.fd';

/**
 * The daemon as a child process in its own namespace, dnsmasq as the site router, and simulated
 * Pi 4 bootloaders (rpi-sim) that take their address from the router and their boot files from us.
 */
describe('boot-server end to end (netns)', needs('netns', 'dnsmasq', 'exportfs', 'exports.d', 'curl', 'tc'), () => {
  let storm: StormLab;
  let fixture: FleetFixture;
  let configFile: string;
  let daemon: ChildProcess | undefined;
  let daemonOutput = '';

  beforeAll(async () => {
    fixture = fleetFixture({ exportsInEtc: true, kernelBytes: KERNEL_BYTES });
    storm = await createStormLab({ poolSize: 16, workDir: join(fixture.dir, 'lab') });
    mkdirSync(fixture.tftpRoot, { recursive: true });
    configFile = join(fixture.dir, 'config.json');
    writeFileSync(
      configFile,
      // No serverIp: the daemon (and pxetools) pick the namespace's only non-internal IPv4.
      JSON.stringify({
        tftpRoot: fixture.tftpRoot,
        nfsRoot: fixture.nfsRoot,
        stateDir: fixture.stateDir,
        exportsFile: fixture.exportsFile,
        exportsClients: '10.77.0.0/16',
        apiPort: 8067,
        logLevel: 'info',
        tftpAfterOfferTimeout: 2,
        neighbourScanInterval: 0,
      }),
    );
  });
  afterAll(async () => {
    if (daemon) await stopProcess(daemon);
    await storm?.close();
    fixture?.close();
  });

  async function startDaemon(): Promise<void> {
    daemonOutput = '';
    daemon = storm.lab.spawn('srv', process.execPath, [...tsNodeArgs, 'packages/boot-server/src/cli.ts', 'start', '--config', configFile], {
      cwd: repoRoot,
    });
    daemon.stdout?.on('data', (d: Buffer) => (daemonOutput += d.toString()));
    daemon.stderr?.on('data', (d: Buffer) => (daemonOutput += d.toString()));
    await waitForOutput(daemon, /"msg":"serving /, 20_000);
  }

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
    const token = readFileSync(join(fixture.stateDir, 'api-token'), 'utf8').trim();
    const args = ['-sS', '-X', method, '-H', `authorization: Bearer ${token}`, '-w', '\n%{http_code}', `http://127.0.0.1:8067${path}`];
    if (body !== undefined) args.push('-H', 'content-type: application/json', '--data', JSON.stringify(body));
    const result = await storm.lab.run('srv', 'curl', args, { timeoutMs: 30_000 });
    const cut = result.stdout.lastIndexOf('\n');
    const text = result.stdout.slice(0, cut);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: Number(result.stdout.slice(cut + 1)), json, text };
  }

  async function metrics(): Promise<Map<string, number>> {
    const result = await storm.lab.run('srv', 'curl', ['-sS', 'http://127.0.0.1:8067/metrics']);
    const out = new Map<string, number>();
    for (const line of result.stdout.split('\n')) {
      const match = /^(iot_tofu_[^\s]+) (\S+)$/.exec(line);
      if (match?.[1] && match[2]) out.set(match[1], Number(match[2]));
    }
    return out;
  }

  function pxetools(args: string[]) {
    return storm.lab.run('srv', process.execPath, [...tsNodeArgs, 'packages/pxetools/src/cli.ts', ...args, '--config', configFile], {
      cwd: repoRoot,
      timeoutMs: 30_000,
    });
  }

  function simulate(args: string[], timeoutMs = 60_000): Promise<SimOutput> {
    return storm.lab
      .run('pis', process.execPath, [...tsNodeArgs, 'packages/rpi-sim/src/bin.ts', '--model', 'pi4', '--json', '-', ...args], {
        cwd: repoRoot,
        timeoutMs,
      })
      .then((result) => {
        expect(result.stderr).toContain('summary:');
        return JSON.parse(result.stdout) as SimOutput;
      });
  }

  it('a Pi added through the API and one added with pxetools boot; MAC, IP, timeline and metrics follow', async () => {
    await startDaemon();
    expect(daemonOutput).toContain(
      `"msg":"serving ${fixture.tftpRoot} as ${SERVER_IP}, proxyDHCP answering registered Pis (config ${configFile})"`,
    );
    // One line per listening socket: proxyDHCP 67 and 4011, TFTP 69, API 8067.
    const listening = daemonOutput.split('\n').filter((l) => l.includes('"msg":"listening on'));
    expect(listening.map((l) => JSON.parse(l).msg).sort()).toEqual(
      [
        `listening on udp 0.0.0.0:67 (dhcp)`,
        `listening on udp ${SERVER_IP}:67 (dhcp)`,
        `listening on udp 0.0.0.0:4011 (pxe)`,
        `listening on udp ${SERVER_IP}:4011 (pxe)`,
        `listening on udp ${SERVER_IP}:69 (tftp)`,
        'listening on tcp 127.0.0.1:8067 (api)',
      ].sort(),
    );

    const [viaApi, viaCli, stranger, misdirected] = simulatedIdentities(4, 'pi4');
    const setup = await api('POST', '/api/v1/setup', { base: 'bookworm', bootDir: fixture.bootDir, rootfsDir: fixture.rootfsDir });
    expect(setup.status, setup.text).toBe(201);
    const added = await api('POST', '/api/v1/pis', {
      serial: viaApi!.serial,
      owner: 'root',
      name: 'api-pi',
      mac: viaApi!.mac,
      base: 'bookworm',
    });
    expect(added.status, added.text).toBe(201);
    // The CLI writes the registry behind the daemon's back; the daemon must pick it up unrestarted.
    const cli = await pxetools(['--add', viaCli!.serial, '--owner', 'root', '--name', 'cli-pi', '--base', 'bookworm', '--yes']);
    expect(cli.code, cli.stderr).toBe(0);
    await expect
      .poll(async () => (await api('GET', '/api/v1/pis')).json.map((p: { serial: string }) => p.serial), { timeout: 5000 })
      .toEqual([viaApi!.serial, viaCli!.serial].sort());

    const out = await simulate(['--pis', '2', '--limit', '40']);
    expect(out.summary).toMatchObject({ pis: 2, booted: 2, neverBooted: 0, failedAttempts: 0 });

    for (const report of out.reports) {
      const bound = report.timeline.find((e) => e.kind === 'bound');
      expect(bound).toMatchObject({ tftpServer: SERVER_IP });
      const leased = bound?.kind === 'bound' ? bound.address : '';
      // Learned facts reach the registry: the real MAC (also for the Pi added without one) and the IP.
      const pi = await api('GET', `/api/v1/pis/${report.serial}`);
      expect(pi.json).toMatchObject({
        serial: report.serial,
        mac: report.mac,
        macSource: expect.stringMatching(/learned|configured/),
        ip: leased,
        model: 'pi4',
      });
      expect(pi.json.lastSeen).toEqual(expect.any(String));

      const timeline = (await api('GET', `/api/v1/pis/${report.serial}/timeline`)).json as Array<Record<string, unknown>>;
      const types = timeline.map((e) => e.type);
      expect(types).toContain('pi-seen');
      expect(types).toContain('offer-sent');
      expect(types[types.length - 1]).toBe('boot-complete');
      const served = timeline.filter((e) => e.type === 'file-served');
      const okFiles = report.timeline.filter((e) => e.kind === 'file' && e.result === 'ok');
      // The same files, but not necessarily in the same order: the server logs a file when its last
      // ACK arrives on the transfer's socket, which can race the Pi's next RRQ on port 69.
      expect(served.map((e) => e.file).sort()).toEqual(okFiles.map((e) => (e.kind === 'file' ? e.path : '')).sort());
      expect(served.find((e) => e.file === `${report.serial}/kernel8.img`)).toMatchObject({
        bytes: KERNEL_BYTES,
        clientIp: leased,
        retries: expect.any(Number),
        ms: expect.any(Number),
      });
      expect(timeline.some((e) => e.type === 'transfer-failed' && e.kind === 'aborted' && e.file === `${report.serial}/start4.elf`)).toBe(
        true,
      );
    }

    // pxetools --list shows what the daemon learned (MAC and IP columns); the daemon saves learned
    // facts every couple of seconds, so the CLI sees them shortly after the boot.
    for (const report of out.reports) {
      const bound = report.timeline.find((e) => e.kind === 'bound');
      await expect
        .poll(
          async () => {
            const list = await pxetools(['--list']);
            return list.stdout.split('\n').find((l) => l.includes(report.serial.slice(-6))) ?? list.stderr;
          },
          { timeout: 10_000, interval: 500 },
        )
        .toMatch(new RegExp(`${report.mac}\\s+${(bound?.kind === 'bound' ? bound.address : '?').replaceAll('.', '\\.')}`));
    }

    // /metrics counts what the Pis saw.
    const files = out.reports.flatMap((r) => r.timeline.filter((e) => e.kind === 'file'));
    const count = (result: string) => files.filter((e) => e.kind === 'file' && e.result === result).length;
    const m = await metrics();
    expect(m.get('iot_tofu_tftp_transfers_total{result="complete"}')).toBe(count('ok'));
    expect(m.get('iot_tofu_tftp_transfers_total{result="aborted"}')).toBe(count('probe'));
    expect(m.get('iot_tofu_tftp_aborts_total')).toBe(count('probe'));
    expect(m.get('iot_tofu_tftp_transfers_total{result="missing"}') ?? 0).toBe(count('not-found'));
    expect(m.get('iot_tofu_tftp_bytes_total')).toBe(out.reports.reduce((sum, r) => sum + r.usefulBytes, 0));
    expect(m.get('iot_tofu_tftp_file_duration_seconds_count{file="kernel8.img"}')).toBe(2);
    expect(m.get('iot_tofu_boot_duration_seconds_count')).toBe(2);
    expect(m.get('iot_tofu_dhcp_offers_total{type="offer",kind="pi"}')).toBeGreaterThanOrEqual(2);
    expect(m.get('iot_tofu_tftp_active_transfers')).toBe(0);
    // The adaptive gate (the default) let both Pis in; nobody had to wait, so fast kernels do not
    // grow it past its initial 16 (a quiet fleet must not open the gate for the next storm).
    expect(m.get('iot_tofu_admission_capacity')).toBe(16);
    expect(m.get('iot_tofu_admission_active')).toBe(0);
    expect(m.get('iot_tofu_admission_waiting')).toBe(0);

    // A Pi nobody registered gets no offer and shows up as discovered; a registered Pi whose EEPROM
    // sends TFTP elsewhere (TFTP_IP) gets the offer but never asks us: its timeline says so.
    expect((await api('POST', '/api/v1/pis', { serial: misdirected!.serial, owner: 'root', name: 'lost', base: 'bookworm' })).status).toBe(
      201,
    );
    const lonely = await simulate(['--pis', '2', '--first-index', '2', '--server', '10.77.0.99', '--limit', '5', '--max-attempts', '1']);
    expect(lonely.summary).toMatchObject({ booted: 0, neverBooted: 2 });
    const discovered = await api('GET', '/api/v1/discovered');
    expect(discovered.json).toEqual([expect.objectContaining({ serial: stranger!.serial, mac: stranger!.mac, model: 'pi4' })]);
    const after = await metrics();
    expect(after.get('iot_tofu_dhcp_ignored_total{reason="pi-not-registered"}')).toBeGreaterThanOrEqual(1);
    expect(after.get('iot_tofu_boots_failed_total{reason="no-tftp-after-offer"}')).toBe(1);
    const lost = (await api('GET', `/api/v1/pis/${misdirected!.serial}/timeline`)).json as Array<Record<string, unknown>>;
    expect(lost.map((e) => e.type)).toEqual(expect.arrayContaining(['pi-seen', 'offer-sent', 'boot-failed']));
    expect(lost.find((e) => e.type === 'boot-failed')).toMatchObject({ reason: 'no TFTP after offer' });
    expect(lost.some((e) => e.type === 'file-served')).toBe(false);

    // The managed exports file holds both Pis, for the configured clients only.
    const exported = parseExports(readFileSync(fixture.exportsFile, 'utf8'));
    for (const serial of [viaApi!.serial, viaCli!.serial, misdirected!.serial]) {
      expect(exported.some((e) => e.path === join(fixture.nfsRoot, serial) && e.clients.some((c) => c.host === '10.77.0.0/16'))).toBe(true);
    }
  }, 180_000);

  it('kill -9 during a boot storm: registry and exports stay whole, the Pis retry and boot after a restart', async () => {
    if (!daemon) await startDaemon();
    const pis = simulatedIdentities(4, 'pi4', 10);
    for (const [i, pi] of pis.entries())
      expect((await api('POST', '/api/v1/pis', { serial: pi.serial, owner: 'root', name: `storm-${i}`, base: 'bookworm' })).status).toBe(
        201,
      );
    const registeredBefore = (await api('GET', '/api/v1/pis')).json.map((p: { serial: string }) => p.serial);
    await applyProfile(storm.lab, PROFILES.lan100);

    const storming = simulate(['--pis', '4', '--first-index', '10', '--limit', '60', '--file-timeout', '5000'], 90_000);
    // Kill once the storm has file data in flight.
    await expect
      .poll(async () => (await metrics()).get('iot_tofu_tftp_active_transfers') ?? 0, { timeout: 20_000, interval: 50 })
      .toBeGreaterThan(0);
    // A registry write racing with the kill.
    const racing = api('POST', '/api/v1/pis', { serial: '7e57c0de', owner: 'root', name: 'racer', base: 'bookworm' });
    await new Promise((resolve) => setTimeout(resolve, 30));
    daemon!.kill('SIGKILL');
    await new Promise<void>((resolve) =>
      daemon!.exitCode !== null || daemon!.signalCode !== null ? resolve() : daemon!.once('exit', () => resolve()),
    );
    expect(daemon!.signalCode).toBe('SIGKILL');
    await racing.catch(() => undefined);

    // Whatever the kill interrupted, what is on disk parses and agrees.
    const registry = JSON.parse(readFileSync(join(fixture.stateDir, 'registry.json'), 'utf8')) as { pis: Record<string, unknown> };
    const registered = Object.keys(registry.pis).sort();
    expect(registered.filter((s) => s !== '7e57c0de')).toEqual(registeredBefore);
    const exported = parseExports(readFileSync(fixture.exportsFile, 'utf8')).map((e) => e.path);
    for (const serial of registeredBefore) expect(exported).toContain(join(fixture.nfsRoot, serial));
    const exportfs = await storm.lab.run('srv', 'exportfs', ['-ra']);
    expect(exportfs.stderr).not.toContain(fixture.exportsFile);

    await startDaemon();
    expect((await api('GET', '/api/v1/pis')).json.map((p: { serial: string }) => p.serial)).toEqual(registered);
    const out = await storming;
    expect(out.summary).toMatchObject({ pis: 4, booted: 4, neverBooted: 0 });
    // Timelines live in the daemon's memory: a boot-complete there was served by the restarted
    // daemon, so the storm really went on across the kill.
    let finishedAfterRestart = 0;
    for (const pi of pis) {
      const timeline = (await api('GET', `/api/v1/pis/${pi.serial}/timeline`)).json as Array<{ type: string }>;
      if (timeline.at(-1)?.type === 'boot-complete') finishedAfterRestart++;
    }
    expect(finishedAfterRestart).toBeGreaterThanOrEqual(1);
  }, 180_000);

  it('SIGHUP turns the admission gate on: a storm of 2 Pis with budget 1 boots one Pi at a time', async () => {
    if (!daemon) await startDaemon();
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(configFile, JSON.stringify({ ...config, admissionBudget: 1 }));
    daemon!.kill('SIGHUP');
    await waitForOutput(daemon!, /SIGHUP: config reloaded/, 10_000);
    expect((await metrics()).get('iot_tofu_admission_capacity')).toBe(1);

    const pis = simulatedIdentities(2, 'pi4', 20);
    for (const [i, pi] of pis.entries())
      expect((await api('POST', '/api/v1/pis', { serial: pi.serial, owner: 'root', name: `gated-${i}`, base: 'bookworm' })).status).toBe(
        201,
      );
    const deferredBefore = (await metrics()).get('iot_tofu_dhcp_ignored_total{reason="deferred"}') ?? 0;
    const out = await simulate(['--pis', '2', '--first-index', '20', '--limit', '40']);
    expect(out.summary).toMatchObject({ pis: 2, booted: 2, failedAttempts: 0 });
    expect((await metrics()).get('iot_tofu_dhcp_ignored_total{reason="deferred"}')).toBeGreaterThan(deferredBefore);
    expect((await api('GET', '/healthz')).json).toMatchObject({ admission: { mode: 'fixed', capacity: 1, active: 0 } });

    // Each Pi's boot (first offer to kernel) ends before the next one's begins.
    const spans: Array<[number, number]> = [];
    for (const pi of pis) {
      const timeline = (await api('GET', `/api/v1/pis/${pi.serial}/timeline`)).json as Array<{ type: string; at: string }>;
      const start = Date.parse(timeline.find((e) => e.type === 'offer-sent')!.at);
      const end = Date.parse(timeline.find((e) => e.type === 'boot-complete')!.at);
      spans.push([start, end]);
    }
    spans.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  }, 180_000);

  // A real PXE firmware (OVMF, x86-64 UEFI, in QEMU under TCG) against the daemon: SIGHUP adds a
  // `pxe.uefiX64` boot file, the firmware gets it in the proxy offer and downloads it over TFTP.
  it('SIGHUP adds a UEFI boot file; OVMF in QEMU downloads it through the daemon', {
    timeout: 180_000,
    ...needs('qemu-system-x86_64', OVMF),
  }, async () => {
    if (!daemon) await startDaemon();
    mkdirSync(join(fixture.tftpRoot, 'uefi'), { recursive: true });
    writeFileSync(join(fixture.tftpRoot, 'uefi', 'boot.efi'), Buffer.alloc(64 * 1024, 0x5a));
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(configFile, JSON.stringify({ ...config, pxe: { uefiX64: 'uefi/boot.efi' } }));
    daemon!.kill('SIGHUP');
    await waitForOutput(daemon!, /SIGHUP: config reloaded/, 10_000);

    await storm.lab.addTap('tap0');
    const serial = join(fixture.dir, 'ovmf.serial');
    const qemu = storm.lab.spawn('sw', 'qemu-system-x86_64', [
      '-accel',
      'tcg',
      '-m',
      '256',
      '-bios',
      OVMF,
      '-display',
      'none',
      '-serial',
      `file:${serial}`,
      '-monitor',
      'none',
      '-netdev',
      'tap,id=n0,ifname=tap0,script=no,downscript=no',
      '-device',
      'virtio-net-pci,netdev=n0,mac=52:54:00:77:00:31,romfile=',
    ]);
    try {
      await expect
        .poll(async () => (await metrics()).get('iot_tofu_tftp_file_duration_seconds_count{file="uefi/boot.efi"}') ?? 0, {
          timeout: 90_000,
          interval: 1000,
        })
        .toBeGreaterThanOrEqual(1);
      const m = await metrics();
      expect(m.get('iot_tofu_dhcp_offers_total{type="offer",kind="uefi-x64"}')).toBeGreaterThanOrEqual(1);
      await expect
        .poll(() => (existsSync(serial) ? readFileSync(serial, 'latin1') : ''), { timeout: 20_000 })
        .toContain('NBP file downloaded successfully');
    } finally {
      await stopProcess(qemu);
    }
  });
});
