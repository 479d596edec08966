import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NetworkLink, runBootStorm, simulatedIdentities } from '@iot-tofu/rpi-sim';
import { needs } from '@iot-tofu/test-kit';
import { DEFAULT_CONFIG, type BootServerConfig } from '../src/config.js';
import { startBootServer, type BootServer, type ListeningSocket } from '../src/daemon.js';
import { runDoctor } from '../src/doctor.js';
import { topics } from '../src/mqtt/index.js';
import { collectStatus, renderStatus, writeRuntimeFile } from '../src/status.js';
import { fleetFixture, withoutExportfs, type FleetFixture } from './fleet-fixture.js';
import { freePort } from './free-port.js';
import { Mosquitto, Recorder } from './mqtt-broker.js';

// The daemon with mqttUrl set (TFTP + API on loopback, no DHCP): a Pi booted by rpi-sim over TFTP
// reaches the broker; with the broker down the daemon still serves, and its /metrics count the drops.
describe('daemon with MQTT', { timeout: 90_000, ...needs('mosquitto') }, () => {
  const logger = pino({ level: 'silent' });
  let fixture: FleetFixture;
  let broker: Mosquitto;
  let running: BootServer | undefined;

  beforeAll(async () => {
    fixture = fleetFixture();
    broker = new Mosquitto(await freePort());
    await broker.start();
  });
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });
  afterAll(async () => {
    await broker?.close();
    fixture?.close();
  });

  interface Running {
    api: string;
    tftpPort: number;
    token: string;
    config: BootServerConfig;
    addresses: ListeningSocket[];
  }

  async function daemon(name: string, mqttUrl: string): Promise<Running> {
    const dir = join(fixture.dir, name);
    const config: BootServerConfig = {
      ...DEFAULT_CONFIG,
      serverIp: '127.0.0.1',
      tftpRoot: join(dir, 'tftpboot'),
      nfsRoot: join(dir, 'nfs'),
      stateDir: join(dir, 'state'),
      exportsFile: join(dir, 'iot-tofu.exports'),
      exportsClients: '127.0.0.0/8',
      dhcp: false,
      tftpPort: 0,
      tftpThreads: 1,
      apiPort: await freePort(),
      neighbourScanInterval: 0,
      mqttUrl,
      region: 'lab',
    };
    mkdirSync(config.tftpRoot, { recursive: true });
    const started = await startBootServer(config, { logger, runner: withoutExportfs, isRoot: () => true });
    running = started.server;
    const token = readFileSync(join(config.stateDir, 'api-token'), 'utf8').trim();
    const api = `http://127.0.0.1:${config.apiPort}`;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const body = JSON.stringify({ base: 'bookworm', bootDir: fixture.bootDir, rootfsDir: fixture.rootfsDir, makeDefault: true });
    expect((await fetch(`${api}/api/v1/setup`, { method: 'POST', headers, body })).status).toBe(201);
    const tftpPort = started.addresses.find((a) => a.service === 'tftp')!.port;
    return { api, tftpPort, token, config, addresses: started.addresses };
  }

  async function addAndBoot(d: Running, index: number): Promise<string> {
    const [pi] = simulatedIdentities(1, 'pi4', index);
    const added = await fetch(`${d.api}/api/v1/pis`, {
      method: 'POST',
      headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ serial: pi!.serial, owner: 'root', name: `pi${index}`, mac: pi!.mac, base: 'bookworm' }),
    });
    expect(added.status, await added.text()).toBe(201);
    const link = new NetworkLink({ tftpPort: d.tftpPort, staticAddress: () => ({ address: '127.0.0.1', tftpServer: '127.0.0.1' }) });
    const storm = await runBootStorm({ pis: [pi!], link, limitMs: 60_000 });
    expect(storm.summary.booted).toBe(1);
    return pi!.serial;
  }

  /** `boot-server status` (text) and doctor's mqtt check, for this process as the daemon its runtime file names. */
  async function statusAndDoctor(d: Running) {
    await writeRuntimeFile(d.config.stateDir, {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      addresses: d.addresses,
      serverIp: '127.0.0.1',
    });
    const status = renderStatus(await collectStatus({ config: d.config, runner: withoutExportfs }));
    const nfs = async () => ({ nfsdRunning: true, nfsdDetail: 'stub', servesV3: true, exported: [] });
    const doctor = await runDoctor({ config: d.config, root: fixture.dir, which: async () => undefined, nfs });
    return { status, mqtt: doctor.checks.find((c) => c.name === 'mqtt') };
  }

  it('publishes a Pi booted over TFTP: its boot events, retained state and discovery', async () => {
    const d = await daemon('up', broker.url);
    const t = topics('lab');
    const live = await Recorder.subscribe(broker.url, ['iot-tofu/lab/#', 'homeassistant/+/+/config']);
    try {
      const serial = await addAndBoot(d, 1);
      await expect.poll(() => JSON.parse(live.last(t.state(serial)) ?? '{}'), { timeout: 15_000 }).toMatchObject({ state: 'booted' });
      const events = live.on(t.boot(serial)).map((m) => JSON.parse(m.payload) as { event: string; file?: string });
      expect(events.some((e) => e.event === 'file-served' && e.file?.endsWith('kernel8.img'))).toBe(true);
      expect(events.at(-1)?.event === 'boot-complete' || events.some((e) => e.event === 'boot-complete')).toBe(true);
      expect(live.on(t.binarySensorConfig(serial)).length).toBeGreaterThanOrEqual(1);
      expect(JSON.parse(live.last(t.binarySensorConfig(serial))!)).toMatchObject({ device: { name: `pi1 (${serial})` } });
      expect(live.last(t.availability)).toBe('online');
      const metrics = await (await fetch(`${d.api}/metrics`)).text();
      expect(metrics).toMatch(/^iot_tofu_mqtt_connected 1$/m);
      const { status, mqtt } = await statusAndDoctor(d);
      expect(status).toMatch(/^ {2}mqtt: connected \(queued 0, dropped 0, reconnects 0\)$/m);
      expect(mqtt).toEqual({ name: 'mqtt', status: 'ok', detail: `connected (queued 0, dropped 0, reconnects 0) to ${broker.url}` });
    } finally {
      await live.close();
    }
  });

  it('broker down from the start: the daemon serves boots, the queue stays bounded, drops are counted', async () => {
    const d = await daemon('down', `mqtt://127.0.0.1:${await freePort()}`);
    const serial = await addAndBoot(d, 2);
    // 1500 more boot events of the registered Pi than the queue (1000) holds, straight on the bus.
    for (let i = 0; i < 1500; i++) running!.bus.emit('boot-complete', { serial, ms: 1000, at: Date.now() });
    const metrics = await (await fetch(`${d.api}/metrics`)).text();
    expect(metrics).toMatch(/^iot_tofu_mqtt_connected 0$/m);
    expect(metrics).toMatch(/^iot_tofu_mqtt_queued 1000$/m);
    const dropped = Number(/^iot_tofu_mqtt_dropped_total (\d+)$/m.exec(metrics)?.[1]);
    // The boot itself published some events too (offer-less TFTP boot: file events + boot-complete).
    expect(dropped).toBeGreaterThanOrEqual(500);
    expect(dropped).toBeLessThan(1500 + 100);
    const { status, mqtt } = await statusAndDoctor(d);
    const line = /^ {2}mqtt: reconnecting \(queued 1000, dropped (\d+), reconnects \d+\)$/m.exec(status);
    // Late events of the boot may still drop one or two more between the two reads.
    expect(Number(line?.[1]), status).toBeGreaterThanOrEqual(dropped);
    expect(mqtt).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/^reconnecting \(queued 1000, .* the broker does not answer; boots are still served/),
    });
    // The timeline of the boot is there as without MQTT.
    const answer = await fetch(`${d.api}/api/v1/pis/${serial}/timeline`, { headers: { authorization: `Bearer ${d.token}` } });
    const timeline = (await answer.json()) as Array<{ type: string }>;
    expect(timeline.map((e) => e.type)).toContain('boot-complete');
  });
});
