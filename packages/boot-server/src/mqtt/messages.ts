// What the daemon publishes over MQTT (issue 15), as pure functions: topic names, payloads, the
// Home Assistant discovery documents and each Pi's state. The I/O shell is publisher.ts; the
// layout is documented in packages/boot-server/README.md ("MQTT").
import type { BootState } from '../boot-state.js';
import type { BootEventName, BootEvents } from '../events.js';

/** A topic segment: no '/', no wildcards, nothing MQTT or Home Assistant would read specially. */
export const REGION_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The region a daemon publishes under when the config names none: its hostname, made topic-safe. */
export function defaultRegion(hostname: string): string {
  const safe = hostname
    .split('.')[0]!
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .slice(0, 64);
  return REGION_PATTERN.test(safe) ? safe : 'default';
}

export interface Topics {
  /** `online` / `offline` (retained; `offline` is the connection's last will). */
  availability: string;
  boot(serial: string): string;
  state(serial: string): string;
  binarySensorConfig(serial: string): string;
  sensorConfig(serial: string): string;
}

export function topics(region: string, discoveryPrefix = 'homeassistant'): Topics {
  const base = `iot-tofu/${region}`;
  return {
    availability: `${base}/status`,
    boot: (serial) => `${base}/pi/${serial}/boot`,
    state: (serial) => `${base}/pi/${serial}/state`,
    binarySensorConfig: (serial) => `${discoveryPrefix}/binary_sensor/${objectId(region, serial, 'booted')}/config`,
    sensorConfig: (serial) => `${discoveryPrefix}/sensor/${objectId(region, serial, 'last_boot')}/config`,
  };
}

/** Home Assistant's node/object id: one per region, Pi and entity, stable across restarts. */
export function objectId(region: string, serial: string, entity: string): string {
  return `iot_tofu_${region.replace(/-/g, '_')}_${serial}_${entity}`;
}

/** The bus events published on `.../boot`; the rest are packet-level or not about one Pi. */
export const PUBLISHED_EVENTS: ReadonlySet<BootEventName> = new Set([
  'dhcp-ignored',
  'offer-sent',
  'file-served',
  'transfer-failed',
  'boot-complete',
  'boot-failed',
]);

type AnyBootEvent = BootEvents[BootEventName];

/**
 * The retained state message (the boot-state machine is src/boot-state.ts, shared with the fleet
 * page): times as ISO strings, absent fields as null, `updatedAt` the time of the event that changed it.
 */
export function statePayload(boot: BootState, updatedAt: number): string {
  return JSON.stringify({
    state: boot.state,
    lastBoot: boot.lastBoot !== undefined ? new Date(boot.lastBoot).toISOString() : null,
    lastBootMs: boot.lastBootMs ?? null,
    reason: boot.reason ?? null,
    gateWaitMs: boot.gateWaitMs ?? null,
    updatedAt: new Date(updatedAt).toISOString(),
  });
}

/** One boot event as published: the bus event's fields, its name and an ISO time. */
export function bootPayload(name: BootEventName, event: AnyBootEvent): string {
  return JSON.stringify({ event: name, ...event, at: new Date(event.at).toISOString() });
}

export interface PiDescription {
  name?: string;
  model?: string | null;
}

/**
 * Home Assistant MQTT discovery: a "booted" binary sensor and a last-boot timestamp sensor per Pi,
 * both reading the retained state topic, both unavailable when the daemon's availability topic says
 * offline (its last will). One device per Pi, so the two entities group together.
 */
export function discoveryConfigs(region: string, serial: string, pi: PiDescription = {}): Array<{ topic: string; payload: string }> {
  const t = topics(region);
  const device = {
    identifiers: [`iot-tofu-${serial}`],
    name: pi.name ? `${pi.name} (${serial})` : `Pi ${serial}`,
    manufacturer: 'Raspberry Pi',
    ...(pi.model ? { model: pi.model } : {}),
    serial_number: serial,
  };
  const common = {
    state_topic: t.state(serial),
    availability_topic: t.availability,
    payload_available: 'online',
    payload_not_available: 'offline',
    device,
    origin: { name: 'iot-tofu boot-server' },
  };
  const booted = {
    ...common,
    name: 'Booted',
    unique_id: objectId(region, serial, 'booted'),
    device_class: 'running',
    value_template: "{{ 'ON' if value_json.state == 'booted' else 'OFF' }}",
    payload_on: 'ON',
    payload_off: 'OFF',
    json_attributes_topic: t.state(serial),
  };
  const lastBoot = {
    ...common,
    name: 'Last boot',
    unique_id: objectId(region, serial, 'last_boot'),
    device_class: 'timestamp',
    value_template: '{{ value_json.lastBoot }}',
  };
  return [
    { topic: t.binarySensorConfig(serial), payload: JSON.stringify(booted) },
    { topic: t.sensorConfig(serial), payload: JSON.stringify(lastBoot) },
  ];
}

/** Reconnect delay after `failures` failed attempts: doubling from initialMs up to maxMs, with ±20 % jitter. */
export function backoffDelay(failures: number, options: { initialMs: number; maxMs: number }, random: () => number = Math.random): number {
  const plain = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(failures, 30));
  return Math.round(plain * (0.8 + 0.4 * random()));
}

/** `mqtt://user:secret@host:1883` → `mqtt://user:***@host:1883`, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}
