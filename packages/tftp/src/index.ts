export {
  decodeTftpPacket,
  encodeTftpPacket,
  writeDataHeader,
  peekAckBlock,
  TftpOpcode,
  TftpErrorCode,
  MAX_DATA_PACKET,
} from './packet.js';
export type {
  TftpPacket,
  TftpRequestPacket,
  TftpDataPacket,
  TftpAckPacket,
  TftpErrorPacket,
  TftpOackPacket,
  TftpOptions,
} from './packet.js';
export { toNetascii, fromNetascii } from './netascii.js';
export {
  negotiateOptions,
  DEFAULT_BLKSIZE,
  MIN_BLKSIZE,
  MAX_BLKSIZE,
  DEFAULT_MAX_BLKSIZE,
} from './options.js';
export type { NegotiationInput, NegotiationLimits, NegotiatedOptions } from './options.js';
export { sanitizeTftpPath } from './path.js';
export type { SanitizedPath, PathRejection } from './path.js';
export { FileSource } from './file-source.js';
export type { FileSourceOptions, FileSourceStats, FileProvider, ProviderRequest, OpenedFile, OpenOptions } from './file-source.js';
export { TftpFileError } from './file-error.js';
export type { FileErrorReason } from './file-error.js';
export type { FileBody } from './file-body.js';
export { ReadTransferMachine, updateRtt, retransmissionTimeout } from './transfer-machine.js';
export type {
  TransferSink,
  TransferOutcome,
  ReadTransferConfig,
  AckResult,
  AdaptiveTimeoutConfig,
  RttEstimate,
} from './transfer-machine.js';
export { TftpServer } from './server.js';
export { TftpServerError } from './server-options.js';
export { defaultTransferThreads } from './worker-proxy.js';
export { nativeSocketStatus, NATIVE_ENV } from './native-socket.js';
export type { NativeSocketStatus } from './native-socket.js';
export type { TftpServerOptions } from './server-options.js';
export type { TftpFileOpener } from './request-file.js';
export type {
  TftpServerEvents,
  TftpServerStats,
  TftpClient,
  TransferStartedEvent,
  FileServedEvent,
  TransferAbortedEvent,
  TransferFailedEvent,
  TransferFailureReason,
  PacketDroppedEvent,
  DropReason,
} from './events.js';
export type { TftpClock, UdpSocket, UdpSocketFactory } from './udp.js';
export { silentLogger } from './logger.js';
export type { TftpLogger } from './logger.js';
