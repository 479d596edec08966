import { Counter, Gauge, type Registry } from 'prom-client';
import type { MqttStats } from './publisher.js';

/** The MQTT publisher's numbers on the daemon's /metrics, read at scrape time. */
export function registerMqttMetrics(registry: Registry, stats: () => MqttStats): void {
  new Gauge({
    name: 'iot_tofu_mqtt_connected',
    help: 'Whether the MQTT publisher is connected to its broker (1) or not (0)',
    registers: [registry],
    collect() {
      this.set(stats().connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'iot_tofu_mqtt_queued',
    help: 'Boot event messages waiting for the MQTT broker',
    registers: [registry],
    collect() {
      this.set(stats().queued);
    },
  });
  const counter = (name: string, help: string, read: (s: MqttStats) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read(stats()));
      },
    });
  counter('iot_tofu_mqtt_published_total', 'MQTT messages the broker acknowledged or took (QoS 0)', (s) => s.published);
  counter('iot_tofu_mqtt_dropped_total', 'Boot event messages dropped: the queue was full while the broker was away', (s) => s.dropped);
  counter('iot_tofu_mqtt_reconnects_total', 'Reconnect attempts to the MQTT broker', (s) => s.reconnects);
}
