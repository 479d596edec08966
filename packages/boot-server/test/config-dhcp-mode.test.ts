import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig, type ConfigLayers } from '../src/config.js';
import { RESTART_KEYS } from '../src/daemon.js';
import { fullDhcpOptions } from '../src/full-dhcp.js';

const host = { ipv4s: ['10.77.0.2'], cwd: '/srv/here' };
const full = { dhcpMode: 'full', dhcpRange: '10.77.0.100-10.77.0.199', dhcpNetmask: '255.255.255.0' };

describe('dhcpMode and the full-mode keys (issue 12)', () => {
  it('defaults: proxy mode, no DNS, one-hour leases, conflict check on', () => {
    expect(resolveConfig({}, host)).toMatchObject({ dhcpMode: 'proxy', dhcpDns: [], dhcpLeaseTime: 3600, dhcpConflictCheck: true });
    expect(fullDhcpOptions(resolveConfig({}, host))).toBeUndefined();
  });

  const ok: Array<[string, ConfigLayers, object]> = [
    [
      'file',
      { file: { path: '/c.json', data: { ...full, dhcpRouter: '10.77.0.1', dhcpDns: ['10.77.0.1', '9.9.9.9'], dhcpLeaseTime: 600 } } },
      { ...full, dhcpRouter: '10.77.0.1', dhcpDns: ['10.77.0.1', '9.9.9.9'], dhcpLeaseTime: 600 },
    ],
    [
      'environment, comma range and DNS list',
      {
        env: {
          IOT_TOFU_DHCP_MODE: 'full',
          IOT_TOFU_DHCP_RANGE: '10.77.0.100, 10.77.0.199',
          IOT_TOFU_DHCP_NETMASK: '255.255.255.0',
          IOT_TOFU_DHCP_DNS: '10.77.0.1,1.1.1.1',
          IOT_TOFU_DHCP_CONFLICT_CHECK: 'off',
        },
      },
      { ...full, dhcpDns: ['10.77.0.1', '1.1.1.1'], dhcpConflictCheck: false },
    ],
    ['flags (--dhcp-mode full --dhcp-range …)', { flags: { ...full, dhcpLeaseTime: '120' } }, { ...full, dhcpLeaseTime: 120 }],
    ['flag proxy beats a full file', { file: { path: '/c.json', data: full }, flags: { dhcpMode: 'proxy' } }, { dhcpMode: 'proxy' }],
  ];
  it.each(ok)('%s', (_name, layers, expected) => {
    expect(resolveConfig(layers, host)).toMatchObject(expected);
  });

  const bad: Array<[string, ConfigLayers, string, RegExp]> = [
    ['unknown mode', { flags: { dhcpMode: 'relay' } }, 'dhcpMode', /expected one of proxy, full/],
    ['full without a range', { flags: { dhcpMode: 'full', dhcpNetmask: '255.255.255.0' } }, 'dhcpRange', /required with dhcpMode full/],
    ['full without a netmask', { flags: { dhcpMode: 'full', dhcpRange: '10.77.0.100-10.77.0.199' } }, 'dhcpNetmask', /required/],
    ['range not two addresses', { flags: { ...full, dhcpRange: '10.77.0.100' } }, 'dhcpRange', /FIRST-LAST/],
    ['range off the server subnet', { flags: { ...full, dhcpRange: '10.78.0.100-10.78.0.199' } }, 'dhcpRange', /subnet/],
    ['range backwards', { flags: { ...full, dhcpRange: '10.77.0.199-10.77.0.100' } }, 'dhcpRange', /end comes before/],
    ['bad netmask', { flags: { ...full, dhcpNetmask: '255.0.255.0' } }, 'dhcpNetmask', /netmask/],
    ['router off the subnet', { flags: { ...full, dhcpRouter: '192.168.1.1' } }, 'dhcpRouter', /subnet/],
    ['DNS not addresses', { flags: { ...full, dhcpDns: 'dns.example' } }, 'dhcpDns', /IPv4/],
    ['lease time too short', { flags: { ...full, dhcpLeaseTime: '30' } }, 'dhcpLeaseTime', /at least 60/],
  ];
  it.each(bad)('%s → ConfigError naming %s', (_name, layers, key, message) => {
    let error: unknown;
    try {
      resolveConfig(layers, host);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect((error as Error).message).toMatch(message);
  });

  it('full mode builds a pool, the lease file in the state dir and the ping check; its keys need a restart', () => {
    const config = resolveConfig({ flags: { ...full, stateDir: '/var/lib/x', dhcpRouter: '10.77.0.1' } }, host);
    const options = fullDhcpOptions(config)!;
    expect(options.store?.path).toBe('/var/lib/x/dhcp-leases.json');
    expect(options.pool.size).toBe(100);
    expect(options.policy).toMatchObject({ serverIp: '10.77.0.2', router: '10.77.0.1', netmask: '255.255.255.0' });
    expect(typeof options.conflictCheck).toBe('function');
    for (const key of ['dhcpMode', 'dhcpRange', 'dhcpNetmask', 'dhcpRouter', 'dhcpDns', 'dhcpLeaseTime', 'dhcpConflictCheck'])
      expect(RESTART_KEYS).toContain(key);
  });
});
