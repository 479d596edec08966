import { hostname } from 'node:os';
import { connect, type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { type BootState, IDLE, nextBootState } from '../boot-state.js';
import type { BootEventName, BootEvents, EventBus } from '../events.js';
import {
  backoffDelay,
  bootPayload,
  discoveryConfigs,
  PUBLISHED_EVENTS,
  redactUrl,
  statePayload,
  topics,
  type PiDescription,
  type Topics,
} from './messages.js';

export interface MqttPublisherOptions {
  /** mqtt://, mqtts://, ws:// or wss:// (credentials in the URL are never logged). */
  url: string;
  /** Topic segment: iot-tofu/<region>/… */
  region: string;
  bus: EventBus;
  /** Only registered Pis are published (a made-up serial in a DISCOVER must not create topics). */
  isRegistered: (serial: string) => boolean;
  /** Registered Pis with name and model: their discovery documents go out on every connect. */
  pis?: () => Array<PiDescription & { serial: string }>;
  logger?: Logger;
  /** Boot event messages kept while the broker is away; the oldest are dropped (and counted) beyond this. */
  maxQueue?: number;
  backoff?: { initialMs: number; maxMs: number };
  clientId?: string;
}

/** Where the daemon's MQTT link stands: off (no mqttUrl), connected, or reconnecting with backoff. */
export type MqttLinkState = 'off' | 'connected' | 'reconnecting';

export interface MqttStats {
  connected: boolean;
  queued: number;
  published: number;
  dropped: number;
  reconnects: number;
}

interface Outgoing {
  topic: string;
  payload: string;
  retain: boolean;
}

/** Publishes in flight at once; the rest wait in the queue. */
const MAX_IN_FLIGHT = 64;
const DEFAULT_MAX_QUEUE = 1000;
const DEFAULT_BACKOFF = { initialMs: 1000, maxMs: 60_000 };
/** How long close() waits to say "offline" before it cuts the connection. */
const CLOSE_GRACE_MS = 2000;

/**
 * Boot events to an MQTT broker (issue 15): each event of a registered Pi on
 * `iot-tofu/<region>/pi/<serial>/boot`, its state retained on `.../state`, Home Assistant discovery
 * for a "booted" binary sensor and a last-boot sensor, availability with a last will. Boot serving
 * never waits for it: bus listeners only enqueue; while the broker is away boot events wait in a
 * bounded queue (oldest dropped and counted), and the latest state of every Pi is kept and sent
 * again on each connect, so the retained state survives a broker restart without persistence.
 */
export class MqttBootPublisher {
  private readonly options: MqttPublisherOptions;
  private readonly logger: Logger;
  private readonly topics: Topics;
  private readonly maxQueue: number;
  private readonly queue: Outgoing[] = [];
  /** serial → its boot state and the time of the event that last changed it. */
  private readonly states = new Map<string, { boot: BootState; at: number }>();
  /** Serials whose discovery went out on this connection; a registry change clears the ones that left. */
  private readonly described = new Set<string>();
  private readonly stats = { published: 0, dropped: 0, reconnects: 0 };
  private inFlight = 0;
  private failures = 0;
  private client: MqttClient | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private off: (() => void) | undefined;
  private closed = false;

  constructor(options: MqttPublisherOptions) {
    this.options = options;
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.topics = topics(options.region);
    this.maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
  }

  /** Subscribes to the bus and starts connecting; returns at once (the broker may be down). */
  start(): void {
    this.off = this.options.bus.onAny((name, event) => this.onEvent(name, event));
    const client = connect(this.options.url, {
      clientId: this.options.clientId ?? `iot-tofu-${this.options.region}-${hostname()}-${process.pid}`,
      clean: true,
      // Our own backoff (doubling, jittered) instead of mqtt.js's fixed period; see scheduleReconnect.
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      keepalive: 30,
      // mqtt.js would buffer QoS 0 publishes without bound while offline; our queue does that, bounded.
      queueQoSZero: false,
      will: { topic: this.topics.availability, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    this.client = client;
    client.on('connect', () => this.onConnect());
    client.on('message', (topic, payload, packet) => this.onRetained(topic, payload, packet.retain));
    client.on('close', () => this.scheduleReconnect());
    client.on('error', (error) => this.logger.debug({ err: error, broker: redactUrl(this.options.url) }, 'MQTT connection error'));
  }

  get snapshot(): MqttStats {
    return { connected: !!this.client?.connected, queued: this.queue.length, ...this.stats };
  }

  /** Events arrive with the serial the daemon resolved (TFTP clients by folder or IP: BootTracker.serialOf). */
  private onEvent<K extends BootEventName>(name: K, event: BootEvents[K]): void {
    if (name === 'registry-changed') {
      this.clearRemoved();
      return;
    }
    const serial = (event as { serial?: string }).serial;
    if (!serial || !this.options.isRegistered(serial)) return;
    if (PUBLISHED_EVENTS.has(name)) this.enqueue({ topic: this.topics.boot(serial), payload: bootPayload(name, event), retain: false });
    const known = this.states.get(serial);
    const previous = known?.boot ?? IDLE;
    const next = nextBootState(previous, name, event);
    if (next === previous) return;
    this.states.set(serial, { boot: next, at: event.at });
    // State is not queued: the map holds the latest, and every connect sends all of it.
    if (!this.client?.connected) return;
    if (!known) this.sendDiscovery(serial, this.describe(serial));
    this.send({ topic: this.topics.state(serial), payload: statePayload(next, event.at), retain: true });
  }

  private describe(serial: string): PiDescription {
    return this.options.pis?.().find((pi) => pi.serial === serial) ?? {};
  }

  private enqueue(message: Outgoing): void {
    this.queue.push(message);
    if (this.queue.length > this.maxQueue) {
      this.queue.shift();
      this.stats.dropped++;
    }
    this.drain();
  }

  private drain(): void {
    while (this.client?.connected && this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) this.send(this.queue.shift()!, true);
  }

  /**
   * Hands one message to mqtt.js. Queued boot events go at QoS 1 (mqtt.js resends the unacknowledged
   * ones after a reconnect; one that fails goes back to the front). State, discovery and availability
   * go at QoS 0: every connect sends them all again, so mqtt.js need not store them while offline.
   */
  private send(message: Outgoing, fromQueue = false): void {
    const client = this.client;
    if (!client) return;
    if (fromQueue) this.inFlight++;
    const options: IClientPublishOptions = { qos: fromQueue ? 1 : 0, retain: message.retain };
    client.publish(message.topic, message.payload, options, (error) => {
      if (fromQueue) this.inFlight--;
      if (!error) {
        this.stats.published++;
      } else if (fromQueue && !this.closed) {
        this.queue.unshift(message);
        if (this.queue.length > this.maxQueue) {
          this.queue.pop();
          this.stats.dropped++;
        }
      }
      if (fromQueue) this.drain();
    });
  }

  private sendDiscovery(serial: string, pi: PiDescription): void {
    this.described.add(serial);
    for (const config of discoveryConfigs(this.options.region, serial, pi)) this.send({ ...config, retain: true });
  }

  /** Pis that left the registry: their state is forgotten and their retained topics cleared. */
  private clearRemoved(): void {
    for (const serial of new Set([...this.states.keys(), ...this.described])) {
      if (this.options.isRegistered(serial)) continue;
      this.states.delete(serial);
      this.described.delete(serial);
      this.clearRetained(serial);
    }
  }

  /**
   * An empty retained payload deletes what the broker keeps: Home Assistant then drops the entities.
   * Offline, nothing is sent; the next connect finds the leftovers by their retained state (below).
   */
  private clearRetained(serial: string): void {
    if (!this.client?.connected) return;
    for (const topic of [this.topics.binarySensorConfig(serial), this.topics.sensorConfig(serial), this.topics.state(serial)]) {
      this.send({ topic, payload: '', retain: true });
    }
  }

  /** A retained state of a Pi no longer registered (removed while the daemon was down or offline). */
  private onRetained(topic: string, payload: Buffer, retain: boolean): void {
    if (!retain || payload.length === 0) return;
    const serial = topic.split('/')[3];
    if (!serial || topic !== this.topics.state(serial) || this.options.isRegistered(serial)) return;
    this.clearRetained(serial);
  }

  private onConnect(): void {
    if (this.failures > 0 || this.stats.reconnects > 0) this.logger.info({ broker: redactUrl(this.options.url) }, 'MQTT connected');
    this.failures = 0;
    this.send({ topic: this.topics.availability, payload: 'online', retain: true });
    this.clearRemoved();
    this.described.clear();
    // The broker hands over the retained states under our region: those of Pis removed meanwhile are cleared.
    this.client?.subscribe(this.topics.state('+'), { qos: 0 });
    const described = new Map((this.options.pis?.() ?? []).map((pi) => [pi.serial, pi] as const));
    const serials = new Set([...described.keys(), ...this.states.keys()]);
    for (const serial of serials) {
      if (!this.options.isRegistered(serial)) continue;
      this.sendDiscovery(serial, described.get(serial) ?? {});
      const state = this.states.get(serial);
      if (state) this.send({ topic: this.topics.state(serial), payload: statePayload(state.boot, state.at), retain: true });
    }
    this.drain();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = backoffDelay(this.failures, this.options.backoff ?? DEFAULT_BACKOFF);
    if (this.failures === 0) {
      const broker = redactUrl(this.options.url);
      this.logger.warn({ broker, retryInMs: delay }, 'MQTT broker unreachable; boot events queue (bounded) until it is back');
    }
    this.failures++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closed || !this.client) return;
      this.stats.reconnects++;
      this.client.reconnect();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Says "offline" (retained) when connected, then disconnects; bounded in time. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.off?.();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      const goodbye = client.publishAsync(this.topics.availability, 'offline', { qos: 1, retain: true });
      await withTimeout(goodbye, CLOSE_GRACE_MS);
    }
    await withTimeout(client.endAsync(!client.connected), CLOSE_GRACE_MS);
    if (!client.disconnected) await client.endAsync(true).catch(() => undefined);
  }
}

function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
