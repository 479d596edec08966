import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Fleet } from '@iot-tofu/fleet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs } from '@iot-tofu/test-kit';
import { DEFAULT_CONFIG, type BootServerConfig } from '../src/config.js';
import { BootServer, StartupError, startBootServer } from '../src/daemon.js';
import { EventBus } from '../src/events.js';
import { fleetFixture, withoutExportfs, type FleetFixture } from './fleet-fixture.js';
import { freePort } from './free-port.js';

const run = promisify(execFile);

// The daemon in-process on loopback (TFTP + API, no DHCP): TFTP events reach timelines and metrics.
// The registry verbs behind POST /api/v1/pis run with isRoot injected (they refuse non-root callers otherwise).
describe('BootServer on loopback', needs('curl'), () => {
  let fixture: FleetFixture;
  let server: BootServer;
  let config: BootServerConfig;
  let tftpPort: number;
  let apiBase: string;
  const logger = pino({ level: 'silent' });

  beforeAll(async () => {
    fixture = fleetFixture();
    await mkdir(fixture.tftpRoot, { recursive: true });
    config = {
      ...loopbackConfig(fixture),
      tftpPort: 0,
      tftpThreads: 1,
      apiPort: await freePort(),
    };
    const started = await startBootServer(config, { logger, runner: withoutExportfs, isRoot: () => true });
    server = started.server;
    tftpPort = started.addresses.find((a) => a.service === 'tftp')!.port;
    apiBase = `http://127.0.0.1:${config.apiPort}`;
  });
  afterAll(async () => {
    await server?.close();
    fixture?.close();
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const token = readFileSync(join(fixture.stateDir, 'api-token'), 'utf8').trim();
    const response = await fetch(`${apiBase}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: response.status, json: (await response.json()) as any };
  };

  const tftpGet = (path: string) =>
    run('curl', ['-sS', '--tftp-blksize', '1468', `tftp://127.0.0.1:${tftpPort}/${path}`]).then(
      (r) => ({ ok: true, stdout: r.stdout }),
      (e: { code?: number }) => ({ ok: false, code: e.code }),
    );

  it('records served and missing files in the timeline, names the missing file, and counts it', async () => {
    const serial = '0a1b2c3d';
    expect((await api('POST', '/api/v1/pis', { serial, owner: 'root', name: 'bare', ownFilesystem: true })).status).toBe(201);
    const cmdline = await tftpGet(`${serial}/cmdline.txt`);
    expect(cmdline).toMatchObject({ ok: true, stdout: expect.stringContaining(`nfsroot=127.0.0.1:${join(fixture.nfsRoot, serial)}`) });
    expect(await tftpGet(`${serial}/config.txt`)).toMatchObject({ ok: false, code: 68 });

    await expect
      .poll(async () => ((await api('GET', `/api/v1/pis/${serial}/timeline`)).json as Array<{ type: string }>).map((e) => e.type))
      .toEqual(['file-served', 'transfer-failed', 'boot-failed']);
    const timeline = (await api('GET', `/api/v1/pis/${serial}/timeline`)).json as Array<Record<string, unknown>>;
    expect(timeline[0]).toMatchObject({
      type: 'file-served',
      file: `${serial}/cmdline.txt`,
      clientIp: '127.0.0.1',
      retries: 0,
      bytes: cmdline.ok ? Buffer.byteLength((cmdline as { stdout: string }).stdout) : -1,
    });
    expect(timeline[1]).toMatchObject({
      type: 'transfer-failed',
      file: `${serial}/config.txt`,
      kind: 'missing',
      reason: `${serial}/config.txt missing`,
    });
    expect(timeline[2]).toMatchObject({ type: 'boot-failed', serial, reason: 'config.txt missing' });

    const metrics = await (await fetch(`${apiBase}/metrics`)).text();
    expect(metrics).toMatch(/^iot_tofu_boots_failed_total\{reason="file-missing"\} 1$/m);
    expect(metrics).toMatch(/^iot_tofu_tftp_transfers_total\{result="missing"\} 1$/m);
    expect(metrics).toMatch(/^iot_tofu_tftp_threads 1$/m);
    expect((await (await fetch(`${apiBase}/healthz`)).json()) as unknown).toMatchObject({
      status: 'ok',
      dhcp: false,
      tftp: true,
      serverIp: '127.0.0.1',
      pis: 1,
      tftpThreads: 1,
    });
  });

  it('announces registry changes, its own and those another process (pxetools) makes', async () => {
    const changes: number[] = [];
    const off = server.bus.on('registry-changed', (e) => changes.push(e.at));
    try {
      expect((await api('POST', '/api/v1/pis', { serial: '0b1b2c3d', owner: 'root', name: 'other', ownFilesystem: true })).status).toBe(
        201,
      );
      expect(changes).toHaveLength(1);
      // A second Fleet on the same folders stands in for the pxetools CLI.
      const cli = await Fleet.open({
        tftpRoot: fixture.tftpRoot,
        nfsRoot: fixture.nfsRoot,
        stateDir: fixture.stateDir,
        exportsFile: fixture.exportsFile,
        exportsClients: '127.0.0.0/8',
        serverIp: '127.0.0.1',
        runner: withoutExportfs,
        isRoot: () => true,
      });
      await cli.remove('0b1b2c3d');
      await cli.close();
      await expect.poll(() => changes.length).toBe(2);
      expect((await api('GET', '/api/v1/pis/0b1b2c3d')).status).toBe(404);
    } finally {
      off();
    }
  });

  it('a second daemon on the same TFTP port fails to start with the key named, and holds nothing', async () => {
    const second = new BootServer({ ...config, tftpPort, apiPort: 0 }, { logger });
    const error = await second.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StartupError);
    expect((error as Error).message).toMatch(/^tftpPort: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    await second.close();
    await second.close();
    // The first one still serves.
    expect(await tftpGet('0a1b2c3d/cmdline.txt')).toMatchObject({ ok: true });
  });
});

// The gate's wiring: kernel transfer times from the bus steer it, reload() switches its mode.

/** A daemon config on loopback over the fixture's folders: no DHCP, no neighbour scans. */
function loopbackConfig(fixture: FleetFixture): BootServerConfig {
  return {
    ...DEFAULT_CONFIG,
    serverIp: '127.0.0.1',
    tftpRoot: fixture.tftpRoot,
    nfsRoot: fixture.nfsRoot,
    stateDir: fixture.stateDir,
    exportsFile: fixture.exportsFile,
    exportsClients: '127.0.0.0/8',
    dhcp: false,
    neighbourScanInterval: 0,
  };
}

describe('EventBus', () => {
  it('delivers an event emitted inside a listener after the current one reached every listener, before emit returns', () => {
    const bus = new EventBus();
    const order: string[] = [];
    bus.on('file-served', (e) => {
      order.push(`first ${e.file}`);
      bus.emit('boot-complete', { serial: 'a1b2c3d4', ms: 1, at: e.at });
    });
    bus.on('file-served', (e) => order.push(`second ${e.file}`));
    bus.on('boot-complete', () => order.push('boot-complete'));
    bus.emit('file-served', { clientIp: '127.0.0.9', file: 'kernel8.img', bytes: 1, ms: 1, retries: 0, at: 0 });
    expect(order).toEqual(['first kernel8.img', 'second kernel8.img', 'boot-complete']);
  });

  it('keeps delivering after a listener throws', () => {
    const errors: string[] = [];
    const bus = new EventBus((_error, name) => errors.push(name));
    const got: number[] = [];
    bus.on('registry-changed', () => {
      throw new Error('bad subscriber');
    });
    bus.on('registry-changed', (e) => got.push(e.at));
    bus.emit('registry-changed', { at: 1 });
    bus.emit('registry-changed', { at: 2 });
    expect(got).toEqual([1, 2]);
    expect(errors).toEqual(['registry-changed', 'registry-changed']);
  });
});

describe('BootServer admission wiring', () => {
  let fixture: FleetFixture;
  let server: BootServer;
  let config: BootServerConfig;

  beforeAll(async () => {
    fixture = fleetFixture();
    await mkdir(fixture.tftpRoot, { recursive: true });
    config = {
      ...loopbackConfig(fixture),
      tftp: false,
      apiPort: 0,
    };
    server = (await startBootServer(config, { logger: pino({ level: 'silent' }) })).server;
  });
  afterAll(async () => {
    await server?.close();
    fixture?.close();
  });

  const offer = (serial: string, at: number) =>
    server.bus.emit('offer-sent', { serial, mac: 'dc:a6:32:00:00:09', kind: 'pi', messageType: 'offer', repeat: false, at });
  const kernel = (serial: string, ms: number, at: number) =>
    server.bus.emit('file-served', { serial, clientIp: '127.0.0.9', file: `${serial}/kernel8.img`, bytes: 1, ms, retries: 0, at });

  it('adaptive by default: a slow kernel cuts the capacity, fast ones grow it, other files do not count', async () => {
    const at = Date.now();
    expect(server.admissionStatus()).toEqual({ mode: 'adaptive', capacity: 16, active: 0, waiting: 0 });
    offer('a1b2c3d4', at);
    offer('a1b2c3d5', at);
    expect(server.admissionStatus().active).toBe(2);
    server.bus.emit('file-served', {
      serial: 'a1b2c3d4',
      clientIp: '127.0.0.9',
      file: 'a1b2c3d4/start4.elf',
      bytes: 1,
      ms: 29_000,
      retries: 0,
      at: at + 100,
    });
    expect(server.admissionStatus().capacity).toBe(16);
    kernel('a1b2c3d4', 25_000, at + 25_000);
    expect(server.admissionStatus()).toMatchObject({ capacity: 12, active: 1 });
    kernel('a1b2c3d5', 3_000, at + 26_000);
    expect(server.admissionStatus()).toMatchObject({ capacity: 13, active: 0 });
    // A repeated kernel right after the boot ended (initramfs window) is not a new sample.
    kernel('a1b2c3d5', 3_000, at + 27_000);
    expect(server.admissionStatus().capacity).toBe(13);
    // A kernel transfer that timed out mid-boot cuts too (once the cooldown has passed).
    offer('a1b2c3d6', at + 40_000);
    server.bus.emit('transfer-failed', {
      clientIp: '127.0.0.9',
      file: 'a1b2c3d6/kernel8.img',
      reason: 'timeout',
      kind: 'timeout',
      retries: 5,
      at: at + 70_000,
    });
    expect(server.admissionStatus().capacity).toBe(9);
  });

  it("announces a boot's end after the file that ended it, to subscribers that came after the daemon's own", () => {
    const seen: string[] = [];
    const off = server.bus.onAny((name, event) => seen.push(`${name} ${(event as { serial?: string }).serial}`));
    try {
      const at = Date.now() + 200_000;
      offer('a1b2c3e0', at);
      kernel('a1b2c3e0', 2_000, at + 2_000);
      expect(seen).toEqual(['offer-sent a1b2c3e0', 'file-served a1b2c3e0', 'boot-complete a1b2c3e0']);
    } finally {
      off();
    }
  });

  it('reload (SIGHUP) switches between fixed, off and auto', async () => {
    await server.reload({ ...config, admissionBudget: 3 });
    expect(server.admissionStatus()).toMatchObject({ mode: 'fixed', capacity: 3 });
    await server.reload({ ...config, admissionBudget: 0 });
    expect(server.admissionStatus()).toMatchObject({ mode: 'off', capacity: Number.POSITIVE_INFINITY });
    await server.reload({ ...config, admissionBudget: 'auto' });
    expect(server.admissionStatus()).toMatchObject({ mode: 'adaptive', capacity: 16 });
  });
});
