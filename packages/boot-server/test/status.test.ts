import { describe, expect, it } from 'vitest';
import { renderStatus, type StatusReport } from '../src/status.js';

describe('renderStatus', () => {
  const base: StatusReport = {
    daemon: { state: 'running', pid: 42, startedAt: '2026-01-01T00:00:00.000Z', addresses: [{ service: 'api', protocol: 'tcp', address: '127.0.0.1', port: 8067 }] },
    nfs: { nfsdRunning: false, nfsdDetail: 'nfsd not available', servesV3: null, exported: [] },
    config: { tftpRoot: '/tftpboot', nfsRoot: '/nfs', stateDir: '/var/lib/iot-tofu' },
  };

  it('prints scalar health facts on one line and what exportfs said about foreign exports files', () => {
    const text = renderStatus({
      ...base,
      daemon: {
        ...base.daemon,
        health: { status: 'ok', dhcp: true, pis: 3, nfs: { exportsFile: '/etc/exports.d/iot-tofu.exports', foreignExportsIssues: { at: '2026-01-01T00:01:00.000Z', messages: ['/etc/exports.d/other.exports:1: unknown keyword "bogus"'] } } },
      },
    });
    expect(text).toContain('  health: status=ok dhcp=true pis=3\n');
    expect(text).toContain('  exportfs complained about exports that are not ours (2026-01-01T00:01:00.000Z): /etc/exports.d/other.exports:1: unknown keyword "bogus"\n');
    expect(text).not.toContain('[object Object]');
  });

  it('says nothing about foreign exports when exportfs ran clean', () => {
    const text = renderStatus({ ...base, daemon: { ...base.daemon, health: { status: 'ok', nfs: { exportsFile: '/x' } } } });
    expect(text).toContain('  health: status=ok\n');
    expect(text).not.toContain('not ours');
  });
});
