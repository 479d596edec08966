import { asciiBytes, ipv4ToBytes, isIpv4, messageType, type DhcpMessage, type DhcpMessageInit } from './codec.js';
import { ProxyConfigError } from './errors.js';
import { classifyClient, type ClientInfo, type ClientKind } from './classify.js';
import { BROADCAST_FLAG, DEFAULT_MAX_MESSAGE_SIZE, DhcpMessageType, DhcpOption } from './options.js';
import { raspberryPiBootOption, skipDiscoveryOption } from './pxe.js';

/** Which Raspberry Pis get the proxy offer (`--dhcp-answer`, config key `dhcpAnswer`). */
export type PiAnswerMode = 'registered' | 'any-pi' | 'none';
export const PI_ANSWER_MODES: readonly PiAnswerMode[] = ['registered', 'any-pi', 'none'];

/** Boot files for non-Pi PXE firmware (config key `pxe`); a missing entry means no answer. */
export interface PxeBootFiles {
  /** TFTP path for x86 BIOS PXE ROMs, e.g. `undionly.kpxe`. */
  bios?: string;
  /** TFTP path for x86-64 UEFI (arch 7/9), e.g. `ipxe.efi`. */
  uefiX64?: string;
  /** TFTP path for arm64 UEFI (arch 11). */
  uefiArm64?: string;
  /** Handed only to iPXE (loop guard): a URL, or a TFTP path that becomes `tftp://<serverIp>/<path>`. */
  ipxeScript?: string;
}
/** The keys of PxeBootFiles, for checking configuration input. */
export const PXE_BOOT_FILE_KEYS: readonly (keyof PxeBootFiles)[] = ['bios', 'uefiX64', 'uefiArm64', 'ipxeScript'];

export interface ProxyPolicy {
  /** Our address: option 54, siaddr for PXE firmware, the TFTP server. */
  serverIp: string;
  answer: PiAnswerMode;
  isRegistered: (client: { serial?: string; mac: string }) => boolean;
  pxe: PxeBootFiles;
  /** Pi 3B ROM timing quirk: repeat the OFFER once after this delay; 0 = never. */
  pi3RepeatDelayMs: number;
  /** Option 66 for Pis (dotted quad, no NUL, after option 43) when TFTP lives elsewhere. */
  option66?: string;
  /** Per-client "Raspberry Pi Boot   " (three spaces) for old Pi 3B ROMs. */
  threeSpaceMenu?: (client: ClientInfo) => boolean;
  /** Admission gate for Pis (boot-storm pacing): false = stay silent this time ('deferred'). */
  admit?: (client: ClientInfo) => boolean;
}

/** Port 67 (DISCOVER → OFFER) or port 4011 (REQUEST → ACK). */
export type ProxyPort = 'dhcp' | 'pxe';

export type IgnoreReason =
  | 'not-a-request'
  | 'not-ethernet'
  | 'wrong-message-type'
  | 'not-pxe'
  | 'pi-answer-none'
  | 'pi-not-registered'
  | 'deferred'
  | 'no-boot-file'
  | 'rate-limited';

export type ProxyDecision =
  | {
      action: 'reply';
      client: ClientInfo;
      reply: DhcpMessageInit & { options: Map<number, Uint8Array> };
      /** Largest reply the client accepts. */
      maxSize: number;
      /** Send the identical reply once more after this many ms (Pi 3B ROM). */
      repeatAfterMs?: number;
    }
  | { action: 'ignore'; reason: IgnoreReason; client?: ClientInfo };

export const DEFAULT_PI3_REPEAT_DELAY_MS = 1200;

// Constant option values, built once: the encoder copies them into every reply.
const PI_MENU = raspberryPiBootOption();
const PI_MENU_THREE_SPACES = raspberryPiBootOption({ threeSpaces: true });
const SKIP_DISCOVERY = skipDiscoveryOption();
const PXE_CLIENT = asciiBytes('PXEClient');
const OFFER = Uint8Array.of(DhcpMessageType.Offer);
const ACK = Uint8Array.of(DhcpMessageType.Ack);

/**
 * The whole proxy decision, pure: what do we answer to this request on this port? Never an IP
 * address (yiaddr stays 0), never an answer to a reply, a non-PXE client or a REQUEST on 67;
 * the Pi menu only to Pis, the iPXE script only to iPXE, firmware files only to their architecture.
 */
export function decideProxyReply(request: DhcpMessage, context: { port: ProxyPort; policy: ProxyPolicy }): ProxyDecision {
  const { port, policy } = context;
  if (request.op !== 1) return { action: 'ignore', reason: 'not-a-request' };
  const client = classifyClient(request, { isRegistered: policy.isRegistered });
  if (!client) return { action: 'ignore', reason: 'not-ethernet' };
  const type = messageType(request);
  const expected = port === 'dhcp' ? type === 'discover' : type === 'request' || type === 'inform';
  if (!expected) return { action: 'ignore', reason: 'wrong-message-type', client };
  if (client.kind === 'not-pxe') return { action: 'ignore', reason: 'not-pxe', client };

  const base = replySkeleton(request, port, policy.serverIp);
  if (client.kind === 'pi') {
    if (policy.answer === 'none') return { action: 'ignore', reason: 'pi-answer-none', client };
    if (policy.answer === 'registered' && client.piEvidence !== 'allow-list') {
      return { action: 'ignore', reason: 'pi-not-registered', client };
    }
    if (policy.admit && !policy.admit(client)) return { action: 'ignore', reason: 'deferred', client };
    base.options.set(DhcpOption.VendorSpecific, policy.threeSpaceMenu?.(client) ? PI_MENU_THREE_SPACES : PI_MENU);
    if (policy.option66) base.options.set(DhcpOption.TftpServerName, asciiBytes(policy.option66));
    const decision: ProxyDecision = { action: 'reply', client, reply: base, maxSize: maxReplySize(request) };
    if (port === 'dhcp' && client.pi3RomLike && policy.pi3RepeatDelayMs > 0) decision.repeatAfterMs = policy.pi3RepeatDelayMs;
    return decision;
  }

  const file = bootFileFor(client.kind, policy);
  if (!file) return { action: 'ignore', reason: 'no-boot-file', client };
  base.siaddr = policy.serverIp;
  base.file = file;
  if (client.kind !== 'ipxe') base.sname = policy.serverIp;
  // BIOS ROMs: "boot the file in this offer", skipping boot-server discovery. UEFI gets no 43.
  if (client.kind === 'bios') base.options.set(DhcpOption.VendorSpecific, SKIP_DISCOVERY);
  return { action: 'reply', client, reply: base, maxSize: maxReplySize(request) };
}

function bootFileFor(kind: ClientKind, policy: ProxyPolicy): string | undefined {
  switch (kind) {
    case 'ipxe':
      return policy.pxe.ipxeScript && ipxeScriptUrl(policy.pxe.ipxeScript, policy.serverIp);
    case 'bios':
      return policy.pxe.bios;
    case 'uefi-x64':
      return policy.pxe.uefiX64;
    case 'uefi-arm64':
      return policy.pxe.uefiArm64;
    default:
      return undefined;
  }
}

/** iPXE's `${next-server}` may be the address server's, so a bare TFTP path becomes an absolute URL. */
export function ipxeScriptUrl(script: string, serverIp: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(script)) return script;
  return `tftp://${serverIp}/${script.replace(/^\/+/, '')}`;
}

/** Fields every proxy reply shares: 53, 54, 60 "PXEClient", 97 echoed; yiaddr and siaddr 0. */
function replySkeleton(request: DhcpMessage, port: ProxyPort, serverIp: string): DhcpMessageInit & { options: Map<number, Uint8Array> } {
  const options = new Map<number, Uint8Array>();
  options.set(DhcpOption.MessageType, port === 'dhcp' ? OFFER : ACK);
  options.set(DhcpOption.ServerId, ipv4ToBytes(serverIp));
  options.set(DhcpOption.VendorClass, PXE_CLIENT);
  const guid = request.options.get(DhcpOption.ClientGuid);
  if (guid?.length === 17) options.set(DhcpOption.ClientGuid, guid);
  return {
    op: 2,
    htype: request.htype,
    hlen: request.hlen,
    hops: request.hops,
    xid: request.xid,
    // dnsmasq sets the broadcast flag on proxy offers; a 4011 ACK keeps the client's flags.
    flags: port === 'dhcp' ? BROADCAST_FLAG : request.flags,
    ciaddr: port === 'dhcp' ? '0.0.0.0' : request.ciaddr,
    giaddr: request.giaddr,
    chaddr: request.chaddr,
    options,
  };
}

/** Option 57 (whole IP datagram the client accepts) minus IP and UDP headers; never below 548. */
export function maxReplySize(request: DhcpMessage): number {
  const option = request.options.get(DhcpOption.MaxMessageSize);
  if (option?.length !== 2) return DEFAULT_MAX_MESSAGE_SIZE;
  const size = (((option[0] as number) << 8) | (option[1] as number)) - 28;
  return Math.min(Math.max(size, DEFAULT_MAX_MESSAGE_SIZE), 1472);
}

export interface Destination {
  address: string;
  port: number;
  broadcast: boolean;
}

/**
 * RFC 2131 4.1 / docs/pi-netboot-protocol.md 2.5: 4011 replies go back to where the request came from; on 67
 * giaddr ≠ 0 → relay:67, ciaddr ≠ 0 → ciaddr:68, else limited broadcast to :68.
 */
export function replyDestination(
  request: Pick<DhcpMessage, 'giaddr' | 'ciaddr'>,
  port: ProxyPort,
  source: { address: string; port: number },
  ports: { server: number; client: number; broadcastAddress: string } = { server: 67, client: 68, broadcastAddress: '255.255.255.255' },
): Destination {
  if (port === 'pxe') {
    // A 4011 request from an address-less client can only be answered by broadcast.
    if (source.address === '0.0.0.0') return { address: ports.broadcastAddress, port: source.port, broadcast: true };
    return { address: source.address, port: source.port, broadcast: false };
  }
  if (request.giaddr !== '0.0.0.0') return { address: request.giaddr, port: ports.server, broadcast: false };
  if (request.ciaddr !== '0.0.0.0') return { address: request.ciaddr, port: ports.client, broadcast: false };
  return { address: ports.broadcastAddress, port: ports.client, broadcast: true };
}

/** Checks a policy before it goes live; the error names the offending key. */
export function validateProxyPolicy(policy: ProxyPolicy): ProxyPolicy {
  if (!isIpv4(policy.serverIp) || policy.serverIp === '0.0.0.0')
    throw new ProxyConfigError('serverIp', `${JSON.stringify(policy.serverIp)} is not a usable IPv4 address`);
  if (!PI_ANSWER_MODES.includes(policy.answer))
    throw new ProxyConfigError('dhcpAnswer', `${JSON.stringify(policy.answer)} is not one of ${PI_ANSWER_MODES.join(', ')}`);
  if (typeof policy.isRegistered !== 'function') throw new ProxyConfigError('isRegistered', 'must be a function');
  if (!Number.isFinite(policy.pi3RepeatDelayMs) || policy.pi3RepeatDelayMs < 0 || policy.pi3RepeatDelayMs > 10_000) {
    throw new ProxyConfigError('pi3RepeatDelayMs', 'must be between 0 (off) and 10000 ms');
  }
  if (policy.option66 !== undefined && !isIpv4(policy.option66)) {
    throw new ProxyConfigError('option66', 'must be a dotted-quad IPv4 address (the Pi has no DNS resolver)');
  }
  for (const key of ['bios', 'uefiX64', 'uefiArm64', 'ipxeScript'] as const) {
    const value = policy.pxe[key];
    if (value === undefined) continue;
    const onWire = key === 'ipxeScript' ? ipxeScriptUrl(value, policy.serverIp) : value;
    if (value.length === 0 || onWire.length > 127 || /[^\x21-\x7e]/.test(onWire)) {
      throw new ProxyConfigError(`pxe.${key}`, 'must be 1-127 printable characters without spaces (it goes into the BOOTP file field)');
    }
  }
  return policy;
}
