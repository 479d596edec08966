export {
  decodeDhcpMessage,
  encodeDhcpMessage,
  clientMac,
  messageType,
  optionText,
  ipv4FromBytes,
  ipv4ToBytes,
  isIpv4,
  asciiBytes,
} from './codec.js';
export type { DhcpMessage, DhcpMessageInit, EncodeOptions } from './codec.js';
export {
  DhcpOption,
  DhcpMessageType,
  ClientArch,
  BROADCAST_FLAG,
  MAGIC_COOKIE,
  MIN_MESSAGE_SIZE,
  DEFAULT_MAX_MESSAGE_SIZE,
  messageTypeName,
} from './options.js';
export type { DhcpMessageTypeName } from './options.js';
export {
  PxeSubOption,
  RASPBERRY_PI_BOOT,
  encodePxeVendorOptions,
  encodePxeMenu,
  encodePxePrompt,
  raspberryPiBootOption,
  skipDiscoveryOption,
  decodePxeVendorOptions,
  decodePxeMenu,
  offersRaspberryPiBoot,
  parsePxeVendorClass,
  decodeClientArch,
} from './pxe.js';
export type { PxeMenuItem, PxeVendorClass } from './pxe.js';
export { DhcpEncodeError, ProxyConfigError, DhcpBindError } from './errors.js';
export { classifyClient, PI3_ROM_XID } from './classify.js';
export type { ClientInfo, ClientKind, PiEvidence, GuidKind, ClassifyContext } from './classify.js';
export { decideProxyReply, replyDestination, ipxeScriptUrl, maxReplySize, DEFAULT_PI3_REPEAT_DELAY_MS } from './policy.js';
export type { ProxyPolicy, PiAnswerMode, PxeBootFiles, ProxyPort, IgnoreReason, ProxyDecision, Destination } from './policy.js';
export { validateProxyPolicy } from './policy.js';
export { ProxyDhcpServer } from './server.js';
export type {
  ProxyDhcpServerOptions,
  ProxyDhcpEvents,
  ProxyDhcpStats,
  PiSeenEvent,
  OfferSentEvent,
  IgnoredEvent,
  DroppedEvent,
  DropReason,
  BoundSocket,
  DhcpClock,
  DhcpUdpSocket,
} from './server.js';
export { PerClientRateLimiter, DEFAULT_RATE_LIMIT } from './rate-limit.js';
export type { RateLimitOptions } from './rate-limit.js';
export { silentLogger, sanitizeForLog } from './logger.js';
export type { DhcpLogger } from './logger.js';
