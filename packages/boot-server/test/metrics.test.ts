import { describe, expect, it } from 'vitest';
import { EventBus } from '../src/events.js';
import { createMetrics, fileLabel, type LiveStats } from '../src/metrics.js';

function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(iot_tofu_\S+) (\S+)$/.exec(line);
    if (match?.[1] && match[2]) out.set(match[1], Number(match[2]));
  }
  return out;
}

describe('metrics', () => {
  it('counts bus events and reads live server numbers at scrape time', async () => {
    const bus = new EventBus();
    let live: LiveStats = {
      tftp: { active: 3, queued: 7, dropped: 2, threads: 1 },
      dhcp: { received: 12, requests: 10, ignored: { 'pi-not-registered': 1, deferred: 1, 'not-pxe': 4 }, dropped: { malformed: 2 } },
      admission: { capacity: 21, active: 17, waiting: 40 },
    };
    const metrics = createMetrics(bus, () => live, { defaultMetrics: false });
    bus.emit('offer-sent', { serial: 'aaaaaaaa', mac: 'dc:a6:32:00:00:01', kind: 'pi', messageType: 'offer', repeat: false, at: 1 });
    // Ignored packets are counted from the server's stats, not from bus events (the bus skips not-pxe).
    bus.emit('dhcp-ignored', { mac: 'dc:a6:32:00:00:02', reason: 'pi-not-registered', at: 1 });
    bus.emit('file-served', {
      serial: 'aaaaaaaa',
      clientIp: '10.0.0.1',
      file: 'aaaaaaaa/kernel8.img',
      bytes: 5000,
      ms: 1500,
      retries: 2,
      at: 2,
    });
    bus.emit('file-served', { clientIp: '10.0.0.1', file: 'bootcode.bin', bytes: 100, ms: 3, retries: 0, at: 2 });
    bus.emit('transfer-failed', {
      clientIp: '10.0.0.1',
      file: 'aaaaaaaa/start4.elf',
      reason: 'Early terminate',
      kind: 'aborted',
      retries: 0,
      at: 3,
    });
    bus.emit('transfer-failed', {
      clientIp: '10.0.0.1',
      file: 'aaaaaaaa/pieeprom.sig',
      reason: 'missing',
      kind: 'missing',
      retries: 0,
      at: 3,
    });
    bus.emit('transfer-failed', {
      clientIp: '10.0.0.1',
      file: 'aaaaaaaa/kernel8.img',
      reason: 'timeout',
      kind: 'timeout',
      retries: 5,
      at: 3,
    });
    bus.emit('boot-complete', { serial: 'aaaaaaaa', ms: 4000, at: 4 });
    bus.emit('boot-failed', { serial: 'bbbbbbbb', reason: 'start4.elf missing', at: 4 });
    bus.emit('boot-failed', { serial: 'cccccccc', reason: 'no TFTP after offer', at: 4 });

    const m = parse(await metrics.render());
    expect(Object.fromEntries([...m].filter(([k]) => !k.includes('_bucket')))).toEqual({
      iot_tofu_dhcp_requests_total: 10,
      'iot_tofu_dhcp_dropped_total{reason="malformed"}': 2,
      iot_tofu_tftp_dropped_total: 2,
      'iot_tofu_dhcp_offers_total{type="offer",kind="pi"}': 1,
      'iot_tofu_dhcp_ignored_total{reason="pi-not-registered"}': 1,
      'iot_tofu_dhcp_ignored_total{reason="deferred"}': 1,
      'iot_tofu_dhcp_ignored_total{reason="not-pxe"}': 4,
      iot_tofu_pis_seen_total: 0,
      'iot_tofu_tftp_transfers_total{result="complete"}': 2,
      'iot_tofu_tftp_transfers_total{result="aborted"}': 1,
      'iot_tofu_tftp_transfers_total{result="missing"}': 1,
      'iot_tofu_tftp_transfers_total{result="timeout"}': 1,
      iot_tofu_tftp_bytes_total: 5100,
      iot_tofu_tftp_retries_total: 7,
      iot_tofu_tftp_aborts_total: 1,
      'iot_tofu_tftp_file_duration_seconds_sum{file="kernel8.img"}': 1.5,
      'iot_tofu_tftp_file_duration_seconds_count{file="kernel8.img"}': 1,
      'iot_tofu_tftp_file_duration_seconds_sum{file="bootcode.bin"}': 0.003,
      'iot_tofu_tftp_file_duration_seconds_count{file="bootcode.bin"}': 1,
      iot_tofu_boot_duration_seconds_sum: 4,
      iot_tofu_boot_duration_seconds_count: 1,
      'iot_tofu_boots_failed_total{reason="file-missing"}': 1,
      'iot_tofu_boots_failed_total{reason="no-tftp-after-offer"}': 1,
      iot_tofu_tftp_active_transfers: 3,
      iot_tofu_tftp_queued_transfers: 7,
      iot_tofu_tftp_threads: 1,
      iot_tofu_admission_capacity: 21,
      iot_tofu_admission_active: 17,
      iot_tofu_admission_waiting: 40,
    });
    live = {
      tftp: { active: 0, queued: 0, dropped: 2 },
      dhcp: { received: 30, requests: 25, dropped: {} },
      admission: { capacity: Number.POSITIVE_INFINITY, active: 3, waiting: 0 },
    };
    const text = await metrics.render();
    // Gate off: capacity is unbounded, which Prometheus writes as +Inf.
    expect(text).toMatch(/^iot_tofu_admission_capacity \+Inf$/m);
    const again = parse(text);
    expect(again.get('iot_tofu_admission_active')).toBe(3);
    expect(again.get('iot_tofu_dhcp_requests_total')).toBe(25);
    expect(again.get('iot_tofu_tftp_active_transfers')).toBe(0);
    metrics.close();
    bus.emit('boot-complete', { serial: 'aaaaaaaa', ms: 1, at: 5 });
    expect(parse(await metrics.render()).get('iot_tofu_boot_duration_seconds_count')).toBe(1);
  });

  it.each([
    ['9f55bbfd/start4.elf', 'start4.elf'],
    ['/9f55bbfd/overlays/overlay_map.dtb', 'overlays/overlay_map.dtb'],
    ['dc-a6-32-01-36-c2/kernel8.img', 'kernel8.img'],
    ['bootcode.bin', 'bootcode.bin'],
    ['base/start4.elf', 'base/start4.elf'],
  ])('labels %s as %s', (path, label) => {
    expect(fileLabel(path)).toBe(label);
  });
});
