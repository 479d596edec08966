import { LeasePool, LeaseStore, pingConflictCheck, type FullModeOptions } from '@iot-tofu/dhcp';
import { leasePoolConfig, type BootServerConfig } from './config.js';

/**
 * Full-DHCP mode options for the daemon (`dhcpMode: "full"`): the pool from dhcpRange/dhcpNetmask,
 * leases in `<stateDir>/dhcp-leases.json`, the ping conflict check unless dhcpConflictCheck is
 * false, and the start-up probe for another DHCP server. `staticAddressFor` maps a Pi (MAC, serial)
 * to its static address once the fleet keeps one (pxetools `--add … --ip`); undefined = none.
 */
export function fullDhcpOptions(
  config: BootServerConfig,
  hooks: {
    staticAddressFor?: (mac: string, serial?: string) => string | undefined;
    isReserved?: (address: string) => boolean;
    onCheckError?: (address: string, detail: string) => void;
  } = {},
): FullModeOptions | undefined {
  if (config.dhcpMode !== 'full' || !config.dhcpRange || !config.dhcpNetmask) return undefined;
  const pool = new LeasePool({
    ...leasePoolConfig({ ...config, dhcpRange: config.dhcpRange, dhcpNetmask: config.dhcpNetmask }),
    ...(hooks.isReserved ? { isReserved: hooks.isReserved } : {}),
  });
  return {
    policy: {
      serverIp: config.serverIp,
      netmask: config.dhcpNetmask,
      dns: config.dhcpDns,
      leaseTimeSec: config.dhcpLeaseTime,
      ...(config.dhcpRouter ? { router: config.dhcpRouter } : {}),
      ...(hooks.staticAddressFor ? { staticAddressFor: hooks.staticAddressFor } : {}),
    },
    pool,
    store: LeaseStore.inStateDir(config.stateDir),
    conflictCheck: config.dhcpConflictCheck ? pingConflictCheck(hooks.onCheckError ? { onError: hooks.onCheckError } : {}) : false,
  };
}
