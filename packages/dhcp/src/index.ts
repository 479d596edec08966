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
export { validateProxyPolicy, PI_ANSWER_MODES, PXE_BOOT_FILE_KEYS } from './policy.js';
export { ProxyDhcpServer } from './server.js';
export type { ProxyDhcpServerOptions, BoundSocket, DhcpClock, DhcpUdpSocket } from './server.js';
export type {
  ProxyDhcpEvents,
  ProxyDhcpStats,
  PiSeenEvent,
  OfferSentEvent,
  IgnoredEvent,
  DroppedEvent,
  DropReason,
} from './server-events.js';
export { PerClientRateLimiter, DEFAULT_RATE_LIMIT } from './rate-limit.js';
export type { RateLimitOptions } from './rate-limit.js';
export { silentLogger, sanitizeForLog } from './logger.js';
export type { DhcpLogger } from './logger.js';
export { ProxyDhcpServer as DhcpServer } from './server.js';
export { LeasePool } from './lease-pool.js';
export type {
  AddressState,
  Lease,
  LeaseState,
  Quarantine,
  QuarantineReason,
  OfferResult,
  OfferFailure,
  CommitFailure,
} from './lease-pool.js';
export {
  validatePoolConfig,
  ipv4ToInt,
  intToIpv4,
  isNetmask,
  DEFAULT_OFFER_HOLD_MS,
  DEFAULT_DECLINE_HOLD_MS,
  MAX_POOL_SIZE,
} from './pool-config.js';
export type { LeasePoolConfig } from './pool-config.js';
export {
  LeaseStore,
  LeaseFileError,
  CoalescingWriter,
  parseLeaseFile,
  parseJournal,
  renderLeaseFile,
  LEASE_FILE_NAME,
  MIN_JOURNAL_ENTRIES_BEFORE_COMPACTION,
} from './lease-store.js';
export type { LeaseFileContents } from './lease-store.js';
export { decideFullReply, validateFullPolicy } from './full-policy.js';
export type { FullDhcpPolicy, FullDecision, FullIgnoreReason } from './full-policy.js';
export { FullModeEngine } from './full-mode.js';
export type { FullModeOptions, FullModeStats, LeaseEvent, LeaseEventState } from './full-mode.js';
export { pingConflictCheck } from './conflict-check.js';
export type { ConflictCheck, ExitCodeRunner, PingConflictCheckOptions } from './conflict-check.js';
export { probeForeignDhcpServers, describeForeignServers, ForeignDhcpServerError } from './foreign-probe.js';
export type { ForeignDhcpServer, ForeignProbeOptions } from './foreign-probe.js';
