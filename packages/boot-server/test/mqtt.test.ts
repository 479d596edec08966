import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { needs } from '@iot-tofu/test-kit';
import { ConfigError, resolveConfig } from '../src/config.js';
import { IDLE, nextBootState } from '../src/boot-state.js';
import { EventBus } from '../src/events.js';
import {
  backoffDelay,
  defaultRegion,
  discoveryConfigs,
  MqttBootPublisher,
  redactUrl,
  registerMqttMetrics,
  statePayload,
  topics,
} from '../src/mqtt/index.js';
import { defaultWebDir } from '../src/web/assets.js';
import { freePort } from './free-port.js';
import { Mosquitto, Recorder } from './mqtt-broker.js';

const REGION = 'lab-1';
const PI = '9f55bbfd';
const STRANGER = '0badc0de';
const t = topics(REGION);

/** One boot as the daemon's bus tells it, starting at `at` (TFTP events carry the serial the daemon resolved). */
function boot(bus: EventBus, serial: string, at: number, options: { dhcp?: boolean } = {}): void {
  if (options.dhcp !== false)
    bus.emit('offer-sent', { serial, mac: 'dc:a6:32:00:00:01', kind: 'rpi', messageType: 'offer', repeat: false, at });
  bus.emit('transfer-started', { serial, clientIp: '10.0.0.5', file: `${serial}/start4.elf`, at: at + 10 });
  bus.emit('file-served', { serial, clientIp: '10.0.0.5', file: `${serial}/start4.elf`, bytes: 2000, ms: 5, retries: 0, at: at + 20 });
  bus.emit('file-served', { serial, clientIp: '10.0.0.5', file: 'kernel8.img', bytes: 300_000, ms: 80, retries: 1, at: at + 200 });
  bus.emit('boot-complete', { serial, ms: 1500, at: at + 1500 });
}

/** The event names a recorder saw on the Pi's boot topic, and the Pi's last state there. */
const events = (r: Recorder) => r.on(t.boot(PI)).map((m) => (JSON.parse(m.payload) as { event: string }).event);
const state = (r: Recorder) => JSON.parse(r.last(t.state(PI)) ?? '{}') as Record<string, unknown>;

describe('MQTT messages', () => {
  it('names topics under the region and Home Assistant ids per Pi', () => {
    expect(t.boot(PI)).toBe('iot-tofu/lab-1/pi/9f55bbfd/boot');
    expect(t.state(PI)).toBe('iot-tofu/lab-1/pi/9f55bbfd/state');
    expect(t.binarySensorConfig(PI)).toBe('homeassistant/binary_sensor/iot_tofu_lab_1_9f55bbfd_booted/config');
    expect(t.sensorConfig(PI)).toBe('homeassistant/sensor/iot_tofu_lab_1_9f55bbfd_last_boot/config');
    expect(defaultRegion('boot1.example.org')).toBe('boot1');
    expect(defaultRegion('weird+host#')).toBe('weird-host-');
    expect(defaultRegion('')).toBe('default');
  });

  it('publishes the shared boot state: through the gate to booted, with the gate wait, times in ISO', () => {
    const waiting = nextBootState(IDLE, 'dhcp-ignored', { reason: 'deferred', at: 1000 });
    expect(waiting.state).toBe('waiting');
    expect(nextBootState(waiting, 'dhcp-ignored', { reason: 'deferred', at: 2000 })).toBe(waiting);
    const booting = nextBootState(waiting, 'offer-sent', { at: 4000 });
    expect(booting).toMatchObject({ state: 'booting', gateWaitMs: 3000 });
    const at = Date.UTC(2026, 0, 1);
    const booted = nextBootState(booting, 'boot-complete', { ms: 2500, at });
    expect(JSON.parse(statePayload(booted, at))).toEqual({
      state: 'booted',
      lastBoot: '2026-01-01T00:00:00.000Z',
      lastBootMs: 2500,
      reason: null,
      gateWaitMs: 3000,
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    // The initramfs right after the kernel belongs to the boot that just completed.
    expect(nextBootState(booted, 'file-served', { at: at + 5 })).toBe(booted);
  });

  it('describes two Home Assistant entities on one device, unavailable with the daemon', () => {
    const configs = discoveryConfigs(REGION, PI, { name: 'kiosk', model: 'pi4' });
    const [binary, sensor] = configs.map((c) => ({ topic: c.topic, config: JSON.parse(c.payload) }));
    expect(binary!.config).toMatchObject({
      state_topic: t.state(PI),
      availability_topic: t.availability,
      device_class: 'running',
      unique_id: 'iot_tofu_lab_1_9f55bbfd_booted',
    });
    const lastBoot = { state_topic: t.state(PI), device_class: 'timestamp', value_template: '{{ value_json.lastBoot }}' };
    expect(sensor!.config).toMatchObject(lastBoot);
    expect(binary!.config.device).toEqual(sensor!.config.device);
    expect(binary!.config.device).toMatchObject({ name: 'kiosk (9f55bbfd)', model: 'pi4' });
  });

  it('backs off by doubling up to the cap, with jitter, and never logs a password', () => {
    const fixed = () => 0.5;
    expect([0, 1, 2, 3, 10].map((n) => backoffDelay(n, { initialMs: 100, maxMs: 1000 }, fixed))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffDelay(0, { initialMs: 1000, maxMs: 1000 }, () => 0)).toBe(800);
    expect(redactUrl('mqtt://ops:s3cret@broker:1883')).toBe('mqtt://ops:***@broker:1883');
  });
});

describe('MQTT config keys', () => {
  const host = { ipv4s: ['10.0.0.2'], cwd: '/' };
  const resolve = (flags: Record<string, unknown>, env: Record<string, string> = {}) => resolveConfig({ flags, env }, host);

  it('are off by default and take a broker URL and a region from flags, environment or file', () => {
    expect(resolve({})).not.toHaveProperty('mqttUrl');
    const flags = { mqttUrl: 'mqtt://broker.lan:1883', region: 'north-2' };
    expect(resolve(flags)).toMatchObject(flags);
    const env = resolve({}, { IOT_TOFU_MQTT_URL: 'mqtts://ops:pw@broker', IOT_TOFU_REGION: 'lab' });
    expect(env).toMatchObject({ mqttUrl: 'mqtts://ops:pw@broker', region: 'lab' });
    const fromFile = resolveConfig({ file: { path: '/etc/iot-tofu/config.json', data: { mqttUrl: 'ws://b:9001', region: 'r1' } } }, host);
    expect(fromFile).toMatchObject({ mqttUrl: 'ws://b:9001', region: 'r1' });
  });

  it('refuse what would fail at connect time or break the topic, without echoing a password', () => {
    expect(() => resolve({ mqttUrl: 'http://broker' })).toThrow(ConfigError);
    expect(() => resolve({ mqttUrl: 'broker:1883' })).toThrow(/mqttUrl: expected mqtt:\/\/host/);
    expect(() => resolve({ region: 'a/b' })).toThrow(/region: expected 1-64 letters/);
    expect(() => resolve({ region: '#' })).toThrow(ConfigError);
    const error = (() => {
      try {
        resolve({ mqttUrl: 'https://ops:s3cret@broker' });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error?.message).not.toContain('s3cret');
  });
});

describe('MQTT publisher against mosquitto', { timeout: 60_000, ...needs('mosquitto') }, () => {
  let broker: Mosquitto;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    broker = new Mosquitto(await freePort());
    await broker.start();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await broker?.close();
  });

  function publisher(bus: EventBus, options: { url?: string; maxQueue?: number; registry?: Set<string> } = {}): MqttBootPublisher {
    const registry = options.registry ?? new Set([PI]);
    const p = new MqttBootPublisher({
      url: options.url ?? broker.url,
      region: REGION,
      bus,
      isRegistered: (serial) => registry.has(serial),
      pis: () => [...registry].map((serial) => ({ serial, name: 'kiosk', model: 'pi4' })),
      backoff: { initialMs: 100, maxMs: 500 },
      ...(options.maxQueue ? { maxQueue: options.maxQueue } : {}),
    });
    p.start();
    cleanups.push(() => p.close());
    return p;
  }

  async function recorder(): Promise<Recorder> {
    const r = await Recorder.subscribe(broker.url, ['iot-tofu/#', 'homeassistant/#']);
    cleanups.push(() => r.close());
    return r;
  }

  it('publishes boot events of registered Pis, retained state, discovery and availability; says offline on close', async () => {
    const bus = new EventBus();
    const live = await recorder();
    const p = publisher(bus);
    await expect.poll(() => p.snapshot.connected).toBe(true);
    await expect.poll(() => live.last(t.availability)).toBe('online');
    boot(bus, PI, Date.UTC(2026, 0, 1));
    boot(bus, STRANGER, Date.UTC(2026, 0, 1));

    await expect.poll(() => events(live)).toEqual(['offer-sent', 'file-served', 'file-served', 'boot-complete']);
    // kernel8.img carried no serial folder: the daemon resolved it (its IP asked for the Pi's start4.elf before).
    const kernel = JSON.parse(live.on(t.boot(PI))[2]!.payload);
    expect(kernel).toMatchObject({ file: 'kernel8.img', bytes: 300_000, retries: 1, at: '2026-01-01T00:00:00.200Z' });
    await expect.poll(() => state(live)).toMatchObject({ state: 'booted', lastBoot: '2026-01-01T00:00:01.500Z', lastBootMs: 1500 });
    expect(live.messages.filter((m) => m.topic.includes(STRANGER))).toEqual([]);

    // A subscriber that comes later gets state, discovery and availability from the retained copies.
    const later = await recorder();
    await expect.poll(() => later.on(t.state(PI)).map((m) => m.retain)).toEqual([true]);
    expect(later.on(t.binarySensorConfig(PI))).toHaveLength(1);
    expect(later.on(t.sensorConfig(PI))).toHaveLength(1);
    expect(later.on(t.availability)).toEqual([{ payload: 'online', retain: true }]);
    expect(later.on(t.boot(PI))).toEqual([]);

    await p.close();
    await expect.poll(() => live.last(t.availability)).toBe('offline');
    expect(p.snapshot).toMatchObject({ dropped: 0, queued: 0 });
  });

  it('agrees with the fleet page on the state, also in TFTP-only mode (no DHCP offer before a reboot)', async () => {
    const page = (await import(pathToFileURL(join(defaultWebDir(), 'boot-state.js')).href)) as typeof import('../src/boot-state.js');
    const bus = new EventBus();
    const seen: Array<{ type: string; at: number }> = [];
    bus.onAny((type, event) => seen.push({ ...event, type }));
    const live = await recorder();
    const p = publisher(bus);
    await expect.poll(() => p.snapshot.connected).toBe(true);
    const first = Date.UTC(2026, 0, 5);
    boot(bus, PI, first, { dhcp: false });
    await expect.poll(() => state(live).state).toBe(page.bootStateOf(seen).state);
    expect(state(live).state).toBe('booted');
    // A reboot two minutes later, TFTP only: both say booting until it completes.
    const second = first + 120_000;
    bus.emit('transfer-started', { serial: PI, clientIp: '10.0.0.5', file: `${PI}/start4.elf`, at: second });
    await expect.poll(() => state(live).state).toBe(page.bootStateOf(seen).state);
    expect(state(live)).toMatchObject({ state: 'booting', updatedAt: new Date(second).toISOString() });
    bus.emit('boot-complete', { serial: PI, ms: 900, at: second + 900 });
    await expect.poll(() => state(live).state).toBe('booted');
    const onPage = page.bootStateOf(seen);
    expect(state(live)).toMatchObject({ lastBoot: new Date(onPage.lastBoot!).toISOString(), lastBootMs: onPage.lastBootMs });
  });

  it('clears the retained discovery and state of a Pi that left the registry, also one removed while the daemon was down', async () => {
    const retainedOf = async (serial: string) => {
      const r = await recorder();
      // Retained messages come right after the subscription; a short settle is enough on loopback.
      await new Promise((resolve) => setTimeout(resolve, 300));
      return [t.state(serial), t.binarySensorConfig(serial), t.sensorConfig(serial)].flatMap((topic) =>
        r.on(topic).filter((m) => m.retain),
      );
    };
    const GONE = '0a1b2c3d';
    const LATER = '0a1b2c3e';
    const registry = new Set([PI, GONE, LATER]);
    const bus = new EventBus();
    const first = publisher(bus, { registry });
    await expect.poll(() => first.snapshot.connected).toBe(true);
    for (const serial of registry) boot(bus, serial, Date.UTC(2026, 0, 6));
    await expect.poll(async () => (await retainedOf(GONE)).length, { timeout: 10_000 }).toBe(3);
    await expect.poll(async () => (await retainedOf(LATER)).length).toBe(3);

    const live = await recorder();
    registry.delete(GONE);
    bus.emit('registry-changed', { at: Date.UTC(2026, 0, 6, 1) });
    await expect.poll(() => live.last(t.state(GONE))).toBe('');
    expect(await retainedOf(GONE)).toEqual([]);
    await expect.poll(async () => (await retainedOf(PI)).length).toBe(3);

    // Removed while no daemon ran: the next one finds its retained state on connect and clears it.
    await first.close();
    registry.delete(LATER);
    const second = publisher(new EventBus(), { registry });
    await expect.poll(() => second.snapshot.connected).toBe(true);
    await expect.poll(async () => (await retainedOf(LATER)).length, { timeout: 10_000 }).toBe(0);
    await expect.poll(async () => (await retainedOf(PI)).length).toBe(3);
  });

  it('a connection lost without goodbye: the broker sends the last will (offline), the publisher comes back online', async () => {
    const bus = new EventBus();
    const live = await recorder();
    const p = publisher(bus);
    await expect.poll(() => live.last(t.availability)).toBe('online');
    // The socket dies under mqtt.js (no DISCONNECT packet), as when the daemon is killed.
    (p as unknown as { client: { stream: { destroy(): void } } }).client.stream.destroy();
    await expect.poll(() => live.on(t.availability).map((m) => m.payload)).toContain('offline');
    await expect.poll(() => live.last(t.availability), { timeout: 10_000 }).toBe('online');
  });

  it('a broker restart mid-stream: events while it is down wait, events after it arrive, the retained state is back', async () => {
    const bus = new EventBus();
    const p = publisher(bus);
    await expect.poll(() => p.snapshot.connected).toBe(true);
    boot(bus, PI, Date.UTC(2026, 0, 2));
    await expect.poll(() => p.snapshot.published).toBeGreaterThanOrEqual(5);

    await broker.stop();
    await expect.poll(() => p.snapshot.connected).toBe(false);
    bus.emit('boot-failed', { serial: PI, reason: 'config.txt missing', at: Date.UTC(2026, 0, 2, 1) });
    expect(p.snapshot.queued).toBe(1);

    await broker.start();
    // No persistence in this broker: what a new subscriber finds was published again after the restart.
    const after = await recorder();
    await expect.poll(() => p.snapshot.connected, { timeout: 15_000 }).toBe(true);
    const failed = { state: 'failed', reason: 'config.txt missing', lastBoot: '2026-01-02T00:00:01.500Z' };
    await expect.poll(() => state(after)).toMatchObject(failed);
    // The event queued while the broker was down went out (a subscriber may connect after it did).
    await expect.poll(() => p.snapshot.queued).toBe(0);
    expect(after.last(t.availability)).toBe('online');
    expect(after.on(t.binarySensorConfig(PI)).length).toBeGreaterThanOrEqual(1);

    boot(bus, PI, Date.UTC(2026, 0, 3));
    await expect.poll(() => events(after).slice(-4)).toEqual(['offer-sent', 'file-served', 'file-served', 'boot-complete']);
    expect(after.on(t.boot(PI)).map((m) => JSON.parse(m.payload).at)).not.toContain('2026-01-02T00:00:01.500Z');
    expect(p.snapshot).toMatchObject({ dropped: 0, queued: 0 });
    expect(p.snapshot.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('broker down at start: never blocks the bus, keeps a bounded queue and counts what it drops', async () => {
    const bus = new EventBus();
    const nobody = `mqtt://127.0.0.1:${await freePort()}`;
    const p = publisher(bus, { url: nobody, maxQueue: 10 });
    const registry = new Registry();
    registerMqttMetrics(registry, () => p.snapshot);

    const started = performance.now();
    for (let i = 0; i < 20; i++) boot(bus, PI, Date.UTC(2026, 0, 4) + i * 10_000);
    const emitMs = performance.now() - started;
    // 80 published events handed over without waiting for any network: far below one connect timeout.
    expect(emitMs).toBeLessThan(5000);
    expect(p.snapshot).toMatchObject({ connected: false, queued: 10, dropped: 70 });
    await expect.poll(() => p.snapshot.reconnects, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    const text = await registry.metrics();
    expect(text).toMatch(/^iot_tofu_mqtt_dropped_total 70$/m);
    expect(text).toMatch(/^iot_tofu_mqtt_queued 10$/m);
    expect(text).toMatch(/^iot_tofu_mqtt_connected 0$/m);
  });
});
