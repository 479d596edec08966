import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventBus } from './events.js';

/** Live numbers the servers keep themselves; read at scrape time. */
export interface LiveStats {
  tftp?: { active: number; queued: number; dropped?: number; threads?: number };
  dhcp?: { received: number; requests: number; ignored?: Partial<Record<string, number>>; dropped?: Partial<Record<string, number>> };
  /** The boot-storm gate; capacity is Infinity when it is off. */
  admission?: { capacity: number; active: number; waiting: number };
}

export interface BootMetrics {
  readonly registry: Registry;
  /** Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
  /** Stops listening to the bus. */
  close(): void;
}

/** The file part of a TFTP path without the serial folder, so label cardinality stays per file name. */
export function fileLabel(path: string): string {
  const parts = path.replace(/^\/+/, '').split('/');
  if (parts.length > 1 && /^[0-9a-f]{8}$|^([0-9a-f]{2}-){5}[0-9a-f]{2}$/.test(parts[0] ?? '')) parts.shift();
  const name = parts.join('/');
  return name.length > 64 ? name.slice(0, 64) : name;
}

/**
 * Prometheus metrics fed by the event bus (counters, histograms) and by the TFTP server's live
 * load (gauges, read at scrape time). One registry per daemon so tests never share state.
 */
export function createMetrics(bus: EventBus, live: () => LiveStats, options: { defaultMetrics?: boolean } = {}): BootMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'iot_tofu_' });

  new Counter({
    name: 'iot_tofu_dhcp_requests_total',
    help: 'DHCP messages received by the proxy (decoded)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(live().dhcp?.requests ?? 0);
    },
  });
  new Counter({
    name: 'iot_tofu_dhcp_dropped_total',
    help: 'DHCP datagrams thrown away (malformed, hook or send failures), by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(live().dhcp?.dropped ?? {})) if (count) this.inc({ reason }, count);
    },
  });
  // From the server's own counters: the bus does not carry every ignored packet (not-pxe, …).
  new Counter({
    name: 'iot_tofu_dhcp_ignored_total',
    help: 'DHCP packets not answered, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(live().dhcp?.ignored ?? {})) if (count) this.inc({ reason }, count);
    },
  });
  new Counter({
    name: 'iot_tofu_tftp_dropped_total',
    help: 'TFTP packets dropped (malformed, duplicates, rate limits, foreign TIDs)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(live().tftp?.dropped ?? 0);
    },
  });
  const dhcpOffers = new Counter({
    name: 'iot_tofu_dhcp_offers_total',
    help: 'Proxy OFFERs (port 67) and ACKs (port 4011) sent, by client kind',
    labelNames: ['type', 'kind'],
    registers: [registry],
  });
  const pisSeen = new Counter({ name: 'iot_tofu_pis_seen_total', help: 'Raspberry Pi DISCOVERs recognised', registers: [registry] });
  const transfers = new Counter({
    name: 'iot_tofu_tftp_transfers_total',
    help: 'TFTP transfers ended, by result',
    labelNames: ['result'],
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'iot_tofu_tftp_bytes_total',
    help: 'File bytes sent over TFTP by completed transfers',
    registers: [registry],
  });
  const retries = new Counter({ name: 'iot_tofu_tftp_retries_total', help: 'TFTP retransmissions', registers: [registry] });
  const aborts = new Counter({
    name: 'iot_tofu_tftp_aborts_total',
    help: 'TFTP transfers the client ended early (e.g. "Early terminate" probes)',
    registers: [registry],
  });
  const fileDuration = new Histogram({
    name: 'iot_tofu_tftp_file_duration_seconds',
    help: 'Time to serve one file, by file name (serial folder stripped)',
    labelNames: ['file'],
    buckets: [0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  });
  const bootDuration = new Histogram({
    name: 'iot_tofu_boot_duration_seconds',
    help: 'From the first DISCOVER of a boot to the kernel delivered',
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300],
    registers: [registry],
  });
  const bootsFailed = new Counter({
    name: 'iot_tofu_boots_failed_total',
    help: 'Boots that went wrong, by reason kind',
    labelNames: ['reason'],
    registers: [registry],
  });
  new Gauge({
    name: 'iot_tofu_tftp_active_transfers',
    help: 'TFTP transfers in progress',
    registers: [registry],
    collect() {
      this.set(live().tftp?.active ?? 0);
    },
  });
  new Gauge({
    name: 'iot_tofu_tftp_queued_transfers',
    help: 'TFTP requests waiting for a transfer slot',
    registers: [registry],
    collect() {
      this.set(live().tftp?.queued ?? 0);
    },
  });
  new Gauge({
    name: 'iot_tofu_tftp_threads',
    help: 'TFTP transfer threads running besides the main thread (fewer than configured: one failed)',
    registers: [registry],
    collect() {
      this.set(live().tftp?.threads ?? 0);
    },
  });
  new Gauge({
    name: 'iot_tofu_admission_capacity',
    help: 'Boot-storm gate: Pis allowed to boot at once (adaptive or fixed; +Inf when the gate is off)',
    registers: [registry],
    collect() {
      const admission = live().admission;
      if (admission) this.set(admission.capacity);
    },
  });
  new Gauge({
    name: 'iot_tofu_admission_active',
    help: 'Boot-storm gate: Pis between admission and their kernel',
    registers: [registry],
    collect() {
      this.set(live().admission?.active ?? 0);
    },
  });
  new Gauge({
    name: 'iot_tofu_admission_waiting',
    help: 'Boot-storm gate: Pis sending DISCOVERs that wait for a slot',
    registers: [registry],
    collect() {
      this.set(live().admission?.waiting ?? 0);
    },
  });

  const offs = [
    bus.on('offer-sent', (e) => dhcpOffers.inc({ type: e.messageType, kind: e.kind })),
    bus.on('pi-seen', () => pisSeen.inc()),
    bus.on('file-served', (e) => {
      transfers.inc({ result: 'complete' });
      bytes.inc(e.bytes);
      if (e.retries > 0) retries.inc(e.retries);
      fileDuration.observe({ file: fileLabel(e.file) }, e.ms / 1000);
    }),
    bus.on('transfer-failed', (e) => {
      transfers.inc({ result: e.kind });
      if (e.retries > 0) retries.inc(e.retries);
      if (e.kind === 'aborted') aborts.inc();
    }),
    bus.on('boot-complete', (e) => bootDuration.observe(e.ms / 1000)),
    // The reason text holds file names; the label keeps only its kind so cardinality stays bounded.
    bus.on('boot-failed', (e) =>
      bootsFailed.inc({
        reason: e.reason.includes('missing') ? 'file-missing' : e.reason.startsWith('no TFTP') ? 'no-tftp-after-offer' : 'other',
      }),
    ),
  ];

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close: () => {
      for (const off of offs) off();
    },
  };
}
