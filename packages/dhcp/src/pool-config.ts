/**
 * The lease pool's configuration and the IPv4 arithmetic it rests on: addresses as 32-bit
 * integers, netmask checks, and the validation whose errors name the config key.
 */
import { isIpv4 } from './codec.js';
import { ProxyConfigError } from './errors.js';

export interface LeasePoolConfig {
  /** First and last address handed out dynamically (inclusive). */
  rangeStart: string;
  rangeEnd: string;
  netmask: string;
  /** Never handed out (nor the router, the network and broadcast addresses). */
  serverIp: string;
  router?: string;
  leaseTimeSec: number;
  /** How long an OFFER keeps its address for the client (RFC 2131 4.3.1 "reserve"); default 30 s. */
  offerHoldMs?: number;
  /** How long a DECLINEd address is out of use; default 10 min. */
  declineHoldMs?: number;
  /** How long an address that answered our ping is out of use; default 10 min. */
  conflictHoldMs?: number;
  /** Addresses reserved for someone by static assignment: never given to anyone else. */
  isReserved?: (address: string) => boolean;
}

export const DEFAULT_OFFER_HOLD_MS = 30_000;
export const DEFAULT_DECLINE_HOLD_MS = 600_000;
/** Dynamic ranges larger than this are refused (the allocator scans the range). */
export const MAX_POOL_SIZE = 65_536;

export function ipv4ToInt(text: string): number {
  const parts = text.split('.');
  return ((Number(parts[0]) << 24) | (Number(parts[1]) << 16) | (Number(parts[2]) << 8) | Number(parts[3])) >>> 0;
}

export function intToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** True for a contiguous netmask (255.255.255.0, not 255.0.255.0), /1 to /30. */
export function isNetmask(text: string): boolean {
  if (!isIpv4(text)) return false;
  const n = ipv4ToInt(text);
  const inverted = ~n >>> 0;
  return n !== 0 && (inverted & (inverted + 1)) === 0 && inverted >= 3;
}

/** Validates a pool configuration; the error names the config key (dhcpRange, dhcpNetmask, …). */
export function validatePoolConfig(config: LeasePoolConfig): LeasePoolConfig {
  for (const [key, value] of [
    ['dhcpRange', config.rangeStart],
    ['dhcpRange', config.rangeEnd],
    ['serverIp', config.serverIp],
  ] as const) {
    if (!isIpv4(value)) throw new ProxyConfigError(key, `${JSON.stringify(value)} is not a dotted-quad IPv4 address`);
  }
  if (!isNetmask(config.netmask))
    throw new ProxyConfigError('dhcpNetmask', `${JSON.stringify(config.netmask)} is not a netmask from /1 to /30`);
  if (config.router !== undefined && !isIpv4(config.router))
    throw new ProxyConfigError('dhcpRouter', `${JSON.stringify(config.router)} is not a dotted-quad IPv4 address`);
  const mask = ipv4ToInt(config.netmask);
  const net = ipv4ToInt(config.serverIp) & mask;
  const start = ipv4ToInt(config.rangeStart);
  const end = ipv4ToInt(config.rangeEnd);
  if (end < start) throw new ProxyConfigError('dhcpRange', `${config.rangeStart}-${config.rangeEnd}: the end comes before the start`);
  if ((start & mask) >>> 0 !== net >>> 0 || (end & mask) >>> 0 !== net >>> 0) {
    throw new ProxyConfigError(
      'dhcpRange',
      `${config.rangeStart}-${config.rangeEnd} is not inside the server's subnet ${intToIpv4(net >>> 0)}/${config.netmask}`,
    );
  }
  if (end - start + 1 > MAX_POOL_SIZE) throw new ProxyConfigError('dhcpRange', `${end - start + 1} addresses; at most ${MAX_POOL_SIZE}`);
  if (config.router !== undefined && (ipv4ToInt(config.router) & mask) >>> 0 !== net >>> 0) {
    throw new ProxyConfigError('dhcpRouter', `${config.router} is not on the server's subnet`);
  }
  if (!Number.isInteger(config.leaseTimeSec) || config.leaseTimeSec < 60 || config.leaseTimeSec > 0x7fffffff) {
    throw new ProxyConfigError('dhcpLeaseTime', `${config.leaseTimeSec}: expected whole seconds, at least 60`);
  }
  return config;
}
