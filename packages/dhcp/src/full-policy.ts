import { clientMac, ipv4FromBytes, ipv4ToBytes, isIpv4, messageType, type DhcpMessage, type DhcpMessageInit } from './codec.js';
import type { ClientInfo } from './classify.js';
import { ProxyConfigError } from './errors.js';
import type { CommitFailure, Lease, LeasePool } from './lease-pool.js';
import { ipv4ToInt, intToIpv4, isNetmask, validatePoolConfig, type LeasePoolConfig } from './pool-config.js';
import { BROADCAST_FLAG, DhcpMessageType, DhcpOption } from './options.js';
import { decideProxyReply, maxReplySize, type ProxyPolicy } from './policy.js';

/** What full-DHCP mode hands out besides the boot options (config keys dhcpRange, dhcpNetmask, …). */
export interface FullDhcpPolicy {
  /** Option 54 and the reply source; also siaddr (next server = our TFTP). */
  serverIp: string;
  netmask: string;
  /** Option 3; none when unset (a dedicated boot LAN may have no way out). */
  router?: string;
  /** Option 6, in order; none when empty. */
  dns: readonly string[];
  leaseTimeSec: number;
  /**
   * Static address of a client (pxetools `--add … --ip`), by MAC and, when the request carries
   * one, Pi serial; undefined = dynamic. Must be on our subnet (it may lie outside the range).
   */
  staticAddressFor?: (mac: string, serial?: string) => string | undefined;
}

export type FullIgnoreReason =
  | 'not-a-request'
  | 'not-ethernet'
  | 'wrong-message-type'
  /** Admission gate said "not now" to a Pi: silence, its bootloader retries (same as proxy mode). */
  | 'deferred'
  | 'pool-exhausted'
  /** REQUEST (or DECLINE/RELEASE) naming another server's id: the client chose someone else. */
  | 'other-server'
  /** RELEASE/DECLINE for an address this client does not hold with us. */
  | 'not-our-lease'
  /** A message that cannot be acted on (REQUEST without any address, INFORM without ciaddr, …). */
  | 'bad-request'
  /** Relayed from a subnet we have no pool for (giaddr off our subnet). */
  | 'foreign-subnet'
  /** The conflict check of this client's address is still running (a retransmitted DISCOVER). */
  | 'probe-pending'
  /** Too many conflict checks at once: the client's retry gets one. */
  | 'conflict-check-busy';

export type FullDecision =
  | {
      action: 'reply';
      type: 'offer' | 'ack' | 'nak';
      client?: ClientInfo;
      mac: string;
      reply: DhcpMessageInit & { options: Map<number, Uint8Array> };
      maxSize: number;
      /** The address offered/acked (undefined for NAK and INFORM). */
      address?: string;
      /** Check this address is unused (ping) before sending: a fresh OFFER. */
      probe?: string;
      /** NAKs go to the limited broadcast when no relay is involved (RFC 2131 4.1). */
      broadcast: boolean;
      /** The lease table changed in a way that must reach the disk before the reply leaves. */
      persist: boolean;
      /** Pi 3B ROM: repeat the OFFER once after this delay. */
      repeatAfterMs?: number;
      /** Why a NAK (also its option 56 text). */
      nakReason?: string;
      lease?: Lease;
    }
  | { action: 'noted'; outcome: 'released' | 'declined'; mac: string; address: string; persist: true; client?: ClientInfo }
  | { action: 'ignore'; reason: FullIgnoreReason; mac?: string; client?: ClientInfo };

const TYPE_BYTE = {
  offer: Uint8Array.of(DhcpMessageType.Offer),
  ack: Uint8Array.of(DhcpMessageType.Ack),
  nak: Uint8Array.of(DhcpMessageType.Nak),
  discover: Uint8Array.of(DhcpMessageType.Discover),
} as const;

/** Options of ours that the boot part must not repeat (the address part sets them). */
const ADDRESS_OPTIONS = new Set<number>([DhcpOption.MessageType, DhcpOption.ServerId]);

/**
 * Full-DHCP decision for one request on port 67 (RFC 2131 4.3), deciding against the lease pool
 * (in-memory, no I/O) at time `now`. Boot options are exactly the proxy policy's: a Pi the proxy
 * would answer gets the "Raspberry Pi Boot" menu in the same OFFER/ACK as its address, PXE firmware
 * its boot file; everyone else gets an address only. The caller persists when `persist` says so
 * and runs the conflict check for `probe` before sending.
 */
export function decideFullReply(
  request: DhcpMessage,
  context: { policy: FullDhcpPolicy; boot: ProxyPolicy; pool: LeasePool; now: number },
): FullDecision {
  const { policy, boot, pool, now } = context;
  if (request.op !== 1) return { action: 'ignore', reason: 'not-a-request' };
  const mac = clientMac(request);
  if (!mac) return { action: 'ignore', reason: 'not-ethernet' };
  const type = messageType(request);
  // One pool, for serverIp's subnet: a relay agent on another subnet needs a pool we do not have.
  if (request.giaddr !== '0.0.0.0' && !pool.onSubnet(request.giaddr)) return { action: 'ignore', reason: 'foreign-subnet', mac };
  const serverId = optionAddress(request, DhcpOption.ServerId);
  const requested = optionAddress(request, DhcpOption.RequestedIp);
  const bootPart = bootOptions(request, boot, type === 'discover');
  const client = bootPart.client;
  const withClient = <T extends object>(d: T): T & { client?: ClientInfo } => (client ? { ...d, client } : d);
  const info = { mac, ...clientInfo(request, client) };
  const staticAddress = staticFor(policy, pool, mac, client?.serial);
  if (staticAddress !== undefined) (info as { staticAddress?: string }).staticAddress = staticAddress;

  switch (type) {
    case 'discover': {
      if (bootPart.deferred) return withClient({ action: 'ignore', reason: 'deferred', mac });
      const offered = pool.offer({ ...info, ...(requested ? { requested } : {}) }, now);
      if (offered === 'pool-exhausted') return withClient({ action: 'ignore', reason: 'pool-exhausted', mac });
      let lease = offered.lease;
      let persist = false;
      if (client?.pi3RomLike) {
        // The Pi 3B ROM boots from the OFFER and never REQUESTs (docs/pi-netboot-protocol.md 1.1): the offer is its lease.
        const bound = pool.commit(info, offered.address, now, { adopt: true });
        if (typeof bound !== 'string') {
          lease = bound;
          persist = true;
        }
      }
      const decision: FullDecision = withClient({
        action: 'reply' as const,
        type: 'offer' as const,
        mac,
        reply: addressReply(request, 'offer', offered.address, policy, bootPart, true),
        maxSize: maxReplySize(request),
        address: offered.address,
        broadcast: false,
        persist,
        lease,
      });
      if (offered.fresh) decision.probe = offered.address;
      if (bootPart.repeatAfterMs !== undefined) decision.repeatAfterMs = bootPart.repeatAfterMs;
      return decision;
    }
    case 'request': {
      if (serverId !== undefined && serverId !== policy.serverIp) {
        // SELECTING with someone else: our offer (if any) is free again.
        pool.withdrawOffer(mac);
        return withClient({ action: 'ignore', reason: 'other-server', mac });
      }
      let address: string | undefined;
      let adopt: boolean;
      if (serverId !== undefined) {
        // SELECTING: the address we offered (option 50; ciaddr from clients that break the rule).
        address = requested ?? nonZero(request.ciaddr);
        adopt = false;
      } else if (requested !== undefined) {
        address = requested; // INIT-REBOOT
        adopt = true;
      } else {
        address = nonZero(request.ciaddr); // RENEWING / REBINDING
        adopt = true;
      }
      if (address === undefined) return withClient({ action: 'ignore', reason: 'bad-request', mac });
      // We are the segment's only DHCP server (full mode checks at start): a client whose lease we
      // lost (new lease file) may keep a free address, anything else is NAKed.
      const bound = pool.commit(info, address, now, { adopt });
      if (typeof bound === 'string') return withClient(nak(request, policy, mac, bound, address));
      return withClient({
        action: 'reply' as const,
        type: 'ack' as const,
        mac,
        reply: addressReply(request, 'ack', address, policy, bootPart, true),
        maxSize: maxReplySize(request),
        address,
        broadcast: false,
        persist: true,
        lease: bound,
      });
    }
    case 'decline': {
      if (serverId !== undefined && serverId !== policy.serverIp) return withClient({ action: 'ignore', reason: 'other-server', mac });
      if (requested === undefined || !pool.decline(mac, requested, now))
        return withClient({ action: 'ignore', reason: 'not-our-lease', mac });
      return withClient({ action: 'noted', outcome: 'declined', mac, address: requested, persist: true });
    }
    case 'release': {
      if (serverId !== undefined && serverId !== policy.serverIp) return withClient({ action: 'ignore', reason: 'other-server', mac });
      const address = nonZero(request.ciaddr);
      if (address === undefined || !pool.release(mac, address, now)) return withClient({ action: 'ignore', reason: 'not-our-lease', mac });
      return withClient({ action: 'noted', outcome: 'released', mac, address, persist: true });
    }
    case 'inform': {
      // Configured elsewhere, wants parameters only: no yiaddr, no lease time (RFC 2131 4.3.5).
      const ciaddr = nonZero(request.ciaddr);
      if (ciaddr === undefined) return withClient({ action: 'ignore', reason: 'bad-request', mac });
      const reply = addressReply(request, 'ack', '0.0.0.0', policy, bootPart, false);
      reply.ciaddr = ciaddr;
      return withClient({
        action: 'reply' as const,
        type: 'ack' as const,
        mac,
        reply,
        maxSize: maxReplySize(request),
        broadcast: false,
        persist: false,
      });
    }
    default:
      return withClient({ action: 'ignore', reason: 'wrong-message-type', mac });
  }
}

const NAK_TEXT: Record<CommitFailure, string> = {
  'wrong-address': 'address not on this network',
  'out-of-range': 'address not in the pool',
  taken: 'address in use by another client',
  quarantined: 'address declined or in use',
  'unknown-client': 'no offer or lease for this address',
};

function nak(request: DhcpMessage, policy: FullDhcpPolicy, mac: string, failure: CommitFailure, address: string): FullDecision {
  const options = new Map<number, Uint8Array>();
  options.set(DhcpOption.MessageType, TYPE_BYTE.nak);
  options.set(DhcpOption.ServerId, ipv4ToBytes(policy.serverIp));
  options.set(DhcpOption.Message, asciiText(`${address}: ${NAK_TEXT[failure]}`));
  const clientId = request.options.get(DhcpOption.ClientId);
  if (clientId) options.set(DhcpOption.ClientId, clientId);
  return {
    action: 'reply',
    type: 'nak',
    mac,
    reply: {
      op: 2,
      htype: request.htype,
      hlen: request.hlen,
      xid: request.xid,
      // RFC 2131 4.3.2: a relayed NAK asks the relay to broadcast it.
      flags: request.giaddr !== '0.0.0.0' ? request.flags | BROADCAST_FLAG : request.flags,
      giaddr: request.giaddr,
      chaddr: request.chaddr,
      options,
    },
    maxSize: maxReplySize(request),
    broadcast: request.giaddr === '0.0.0.0',
    persist: false,
    nakReason: failure,
  };
}

interface BootPart {
  client?: ClientInfo;
  deferred: boolean;
  options?: Map<number, Uint8Array>;
  file?: string;
  sname?: string;
  repeatAfterMs?: number;
}

/**
 * The proxy policy's answer to this client, as if it were a DISCOVER: the options a proxy OFFER
 * would carry (60, 97, 43, 66) and the file/sname fields, or nothing. The admission gate is asked
 * only for DISCOVERs (a REQUEST completes an exchange the gate already let through).
 */
function bootOptions(request: DhcpMessage, boot: ProxyPolicy, admit: boolean): BootPart {
  const asDiscover: DhcpMessage = { ...request, options: new Map(request.options).set(DhcpOption.MessageType, TYPE_BYTE.discover) };
  const policy: ProxyPolicy = admit || !boot.admit ? boot : { ...boot, admit: () => true };
  const decision = decideProxyReply(asDiscover, { port: 'dhcp', policy });
  if (decision.action === 'ignore') {
    return decision.client ? { client: decision.client, deferred: decision.reason === 'deferred' } : { deferred: false };
  }
  const part: BootPart = { client: decision.client, deferred: false, options: decision.reply.options };
  if (decision.reply.file) part.file = decision.reply.file;
  if (decision.reply.sname) part.sname = decision.reply.sname;
  if (decision.repeatAfterMs !== undefined) part.repeatAfterMs = decision.repeatAfterMs;
  return part;
}

/**
 * OFFER/ACK with an address: 53, 54, lease times (51, 58 = 1/2, 59 = 7/8), 1, 28, 3, 6, 61 echoed
 * (RFC 6842), then the boot options in the proxy's order (43 before 66: the Pi 3B ROM's "last wins").
 */
function addressReply(
  request: DhcpMessage,
  type: 'offer' | 'ack',
  yiaddr: string,
  policy: FullDhcpPolicy,
  bootPart: BootPart,
  leaseOptions: boolean,
): DhcpMessageInit & { options: Map<number, Uint8Array> } {
  const options = new Map<number, Uint8Array>();
  options.set(DhcpOption.MessageType, TYPE_BYTE[type]);
  options.set(DhcpOption.ServerId, ipv4ToBytes(policy.serverIp));
  if (leaseOptions) {
    options.set(DhcpOption.LeaseTime, u32(policy.leaseTimeSec));
    options.set(DhcpOption.RenewalTime, u32(Math.floor(policy.leaseTimeSec / 2)));
    options.set(DhcpOption.RebindingTime, u32(Math.floor((policy.leaseTimeSec * 7) / 8)));
  }
  options.set(DhcpOption.SubnetMask, ipv4ToBytes(policy.netmask));
  const mask = ipv4ToInt(policy.netmask);
  options.set(DhcpOption.BroadcastAddress, ipv4ToBytes(intToIpv4((ipv4ToInt(policy.serverIp) | ~mask) >>> 0)));
  if (policy.router) options.set(DhcpOption.Router, ipv4ToBytes(policy.router));
  if (policy.dns.length > 0) {
    const dns = new Uint8Array(policy.dns.length * 4);
    for (const [i, server] of policy.dns.entries()) dns.set(ipv4ToBytes(server), i * 4);
    options.set(DhcpOption.DnsServers, dns);
  }
  const clientId = request.options.get(DhcpOption.ClientId);
  if (clientId) options.set(DhcpOption.ClientId, clientId);
  for (const [code, value] of bootPart.options ?? []) if (!ADDRESS_OPTIONS.has(code)) options.set(code, value);
  const reply: DhcpMessageInit & { options: Map<number, Uint8Array> } = {
    op: 2,
    htype: request.htype,
    hlen: request.hlen,
    hops: request.hops,
    xid: request.xid,
    flags: request.flags,
    yiaddr,
    siaddr: policy.serverIp,
    giaddr: request.giaddr,
    chaddr: request.chaddr,
    options,
  };
  if (bootPart.file) reply.file = bootPart.file;
  if (bootPart.sname) reply.sname = bootPart.sname;
  return reply;
}

function staticFor(policy: FullDhcpPolicy, pool: LeasePool, mac: string, serial: string | undefined): string | undefined {
  const address = policy.staticAddressFor?.(mac, serial);
  // A static address off our subnet cannot be served here; the client gets a dynamic one.
  return address !== undefined && pool.isAssignable(address) ? address : undefined;
}

function clientInfo(request: DhcpMessage, client: ClientInfo | undefined): { clientId?: string; hostname?: string; serial?: string } {
  const out: { clientId?: string; hostname?: string; serial?: string } = {};
  const clientId = request.options.get(DhcpOption.ClientId);
  if (clientId && clientId.length > 0 && clientId.length <= 64) out.clientId = Buffer.from(clientId).toString('hex');
  const hostname = request.options.get(DhcpOption.HostName);
  if (hostname) {
    const clean = String.fromCharCode(...hostname.subarray(0, 63)).replace(/[^A-Za-z0-9._-]/g, '');
    if (clean) out.hostname = clean;
  }
  if (client?.serial) out.serial = client.serial;
  return out;
}

function optionAddress(request: DhcpMessage, code: number): string | undefined {
  const value = request.options.get(code);
  return value?.length === 4 ? ipv4FromBytes(value) : undefined;
}

function nonZero(address: string): string | undefined {
  return address === '0.0.0.0' ? undefined : address;
}

function u32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function asciiText(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0x7f);
}

/** Checks a full-mode policy and its pool config; the error names the config key. */
export function validateFullPolicy(policy: FullDhcpPolicy, pool: LeasePoolConfig): FullDhcpPolicy {
  validatePoolConfig(pool);
  if (!isNetmask(policy.netmask)) throw new ProxyConfigError('dhcpNetmask', `${JSON.stringify(policy.netmask)} is not a netmask`);
  if (policy.router !== undefined && !isIpv4(policy.router))
    throw new ProxyConfigError('dhcpRouter', `${JSON.stringify(policy.router)} is not an IPv4 address`);
  policy.dns.forEach((server, i) => {
    if (!isIpv4(server)) throw new ProxyConfigError(`dhcpDns[${i}]`, `${JSON.stringify(server)} is not an IPv4 address`);
  });
  if (policy.dns.length > 8) throw new ProxyConfigError('dhcpDns', 'at most 8 servers');
  if (policy.serverIp !== pool.serverIp || policy.netmask !== pool.netmask || policy.leaseTimeSec !== pool.leaseTimeSec) {
    throw new ProxyConfigError('serverIp', 'the full-mode policy and the lease pool disagree on serverIp, netmask or lease time');
  }
  return policy;
}
