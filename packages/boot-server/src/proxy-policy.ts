import type { ClientInfo, ProxyPolicy } from '@iot-tofu/dhcp';
import type { BootServerConfig } from './config.js';

/** The config keys the proxy's answers depend on (all of them apply on SIGHUP). */
export type PolicyConfig = Pick<BootServerConfig, 'serverIp' | 'dhcpAnswer' | 'pxe' | 'option66' | 'threeSpaceMenu'>;

/** "Raspberry Pi Boot   " for every Pi (true), none (false), or the listed serials and MACs. */
export function threeSpaceMenuMatcher(selection: BootServerConfig['threeSpaceMenu']): ((client: ClientInfo) => boolean) | undefined {
  if (selection === true) return () => true;
  if (selection === false || selection.length === 0) return undefined;
  const chosen = new Set(selection);
  return (client) => chosen.has(client.mac) || (client.serial !== undefined && chosen.has(client.serial));
}

/**
 * The dhcp package's proxy policy for a config, pure: the daemon hands in the fleet lookup and the
 * admission gate. Rebuilt on every SIGHUP.
 */
export function proxyPolicy(
  config: PolicyConfig,
  hooks: { isRegistered: ProxyPolicy['isRegistered']; admit?: ProxyPolicy['admit'] },
): ProxyPolicy {
  const threeSpaceMenu = threeSpaceMenuMatcher(config.threeSpaceMenu);
  return {
    serverIp: config.serverIp,
    answer: config.dhcpAnswer,
    isRegistered: hooks.isRegistered,
    pxe: { ...config.pxe },
    pi3RepeatDelayMs: 1200,
    ...(config.option66 ? { option66: config.option66 } : {}),
    ...(threeSpaceMenu ? { threeSpaceMenu } : {}),
    ...(hooks.admit ? { admit: hooks.admit } : {}),
  };
}
