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
