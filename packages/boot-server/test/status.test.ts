import { describe, expect, it } from 'vitest';
import { mqttCheck } from '../src/doctor.js';
import { renderStatus, type StatusReport } from '../src/status.js';

describe('renderStatus', () => {
  const base: StatusReport = {
    daemon: {
      state: 'running',
      pid: 42,
      startedAt: '2026-01-01T00:00:00.000Z',
      addresses: [{ service: 'api', protocol: 'tcp', address: '127.0.0.1', port: 8067 }],
    },
    nfs: { nfsdRunning: false, nfsdDetail: 'nfsd not available', servesV3: null, exported: [] },
    config: { tftpRoot: '/tftpboot', nfsRoot: '/nfs', stateDir: '/var/lib/iot-tofu' },
  };

  it('prints scalar health facts on one line and what exportfs said about foreign exports files', () => {
    const text = renderStatus({
      ...base,
      daemon: {
        ...base.daemon,
        health: {
          status: 'ok',
          dhcp: true,
          pis: 3,
          nfs: {
            exportsFile: '/etc/exports.d/iot-tofu.exports',
            foreignExportsIssues: { at: '2026-01-01T00:01:00.000Z', messages: ['/etc/exports.d/other.exports:1: unknown keyword "bogus"'] },
          },
        },
      },
    });
    expect(text).toContain('  health: status=ok dhcp=true pis=3\n');
    expect(text).toContain(
      '  exportfs complained about exports that are not ours (2026-01-01T00:01:00.000Z): /etc/exports.d/other.exports:1: unknown keyword "bogus"\n',
    );
    expect(text).not.toContain('[object Object]');
  });

  it('says nothing about foreign exports when exportfs ran clean', () => {
    const text = renderStatus({ ...base, daemon: { ...base.daemon, health: { status: 'ok', nfs: { exportsFile: '/x' } } } });
    expect(text).toContain('  health: status=ok\n');
    expect(text).not.toContain('not ours');
  });

  it('prints the MQTT link under the daemon: off, connected or reconnecting with its queue and drops', () => {
    const withMqtt = (mqtt: unknown) => renderStatus({ ...base, daemon: { ...base.daemon, health: { status: 'ok', mqtt } } });
    expect(withMqtt({ state: 'off' })).toContain('  health: status=ok\n  mqtt: off (no mqttUrl)\n');
    expect(withMqtt({ state: 'connected', queued: 0, dropped: 0, reconnects: 1 })).toContain(
      '  mqtt: connected (queued 0, dropped 0, reconnects 1)\n',
    );
    expect(withMqtt({ state: 'reconnecting', queued: 1000, dropped: 37, reconnects: 4 })).toContain(
      '  mqtt: reconnecting (queued 1000, dropped 37, reconnects 4)\n',
    );
    // A daemon from before MQTT (no mqtt in /healthz), or something unreadable: no line rather than a wrong one.
    expect(renderStatus({ ...base, daemon: { ...base.daemon, health: { status: 'ok' } } })).not.toContain('mqtt');
    expect(withMqtt({ state: 'sideways' })).not.toContain('mqtt');
  });
});

describe("doctor's mqtt check", () => {
  const url = 'mqtt://iot:secret@broker.lab:1883';
  const running = (mqtt: unknown) => ({ running: true as const, health: { status: 'ok', mqtt } });

  it('reads the running daemon: connected is ok, reconnecting a warning that says boots go on', () => {
    const connected = { state: 'connected', queued: 0, dropped: 2, reconnects: 1 };
    expect(mqttCheck(url, running(connected))).toEqual({
      status: 'ok',
      detail: 'connected (queued 0, dropped 2, reconnects 1) to mqtt://iot:***@broker.lab:1883',
    });
    const away = mqttCheck(url, running({ state: 'reconnecting', queued: 12, dropped: 0, reconnects: 3 }));
    expect(away.status).toBe('warn');
    expect(away.detail).toMatch(
      /^reconnecting \(queued 12, dropped 0, reconnects 3\) to mqtt:\/\/iot:\*\*\*@broker\.lab:1883: .*boots are still served/,
    );
    expect(away.detail).not.toContain('secret');
  });

  it('off is ok; a configured broker the running daemon does not use is a warning (mqttUrl needs a restart)', () => {
    expect(mqttCheck(undefined, running({ state: 'off' }))).toEqual({ status: 'ok', detail: 'off (no mqttUrl)' });
    expect(mqttCheck(url, running({ state: 'off' }))).toMatchObject({ status: 'warn', detail: expect.stringContaining('restart it') });
  });

  it('without a running daemon, or one that does not answer, says what the config asks for', () => {
    expect(mqttCheck(undefined, { running: false })).toEqual({ status: 'ok', detail: 'off (no mqttUrl)' });
    expect(mqttCheck(url, { running: false })).toEqual({ status: 'ok', detail: 'mqtt://iot:***@broker.lab:1883 (daemon not running)' });
    expect(mqttCheck(url, { running: true, healthError: 'fetch failed' })).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('fetch failed'),
    });
  });
});
