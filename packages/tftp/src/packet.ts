import { DecodeError } from '@iot-tofu/errors';

/** TFTP opcodes (RFC 1350, OACK from RFC 2347). */
export const TftpOpcode = {
  RRQ: 1,
  WRQ: 2,
  DATA: 3,
  ACK: 4,
  ERROR: 5,
  OACK: 6,
} as const;
export type TftpOpcode = (typeof TftpOpcode)[keyof typeof TftpOpcode];

/** TFTP error codes (RFC 1350, 8 from RFC 2347). */
export const TftpErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;
export type TftpErrorCode = (typeof TftpErrorCode)[keyof typeof TftpErrorCode];

/**
 * Option names are case-insensitive (RFC 2347): decoders store them lower-cased, in packet
 * order; a repeated name keeps its first value.
 */
export type TftpOptions = Readonly<Record<string, string>>;

export interface TftpRequestPacket {
  readonly type: 'rrq' | 'wrq';
  readonly filename: string;
  /** Lower-cased transfer mode as sent (`octet`, `netascii`, `mail`, or anything else). */
  readonly mode: string;
  readonly options: TftpOptions;
}
export interface TftpDataPacket {
  readonly type: 'data';
  /** 16-bit block number as on the wire (rolls over to 0 after 65535). */
  readonly block: number;
  readonly data: Uint8Array;
}
export interface TftpAckPacket {
  readonly type: 'ack';
  readonly block: number;
}
export interface TftpErrorPacket {
  readonly type: 'error';
  readonly code: number;
  readonly message: string;
}
export interface TftpOackPacket {
  readonly type: 'oack';
  readonly options: TftpOptions;
}
export type TftpPacket = TftpRequestPacket | TftpDataPacket | TftpAckPacket | TftpErrorPacket | TftpOackPacket;

/** RFC 2348 allows 8..65464; a DATA packet can therefore be at most 65468 bytes. */
export const MAX_DATA_PACKET = 4 + 65464;

const latin1 = new TextDecoder('latin1');

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Reads a NUL-terminated string starting at `offset`; returns it and the offset after the NUL. */
function readCString(bytes: Uint8Array, offset: number, what: string): [string, number] {
  const end = bytes.indexOf(0, offset);
  if (end < 0) throw new DecodeError(`${what} is not NUL-terminated`, bytes.length);
  return [latin1.decode(bytes.subarray(offset, end)), end + 1];
}

function readOptions(bytes: Uint8Array, offset: number): Record<string, string> {
  const options: Record<string, string> = {};
  let at = offset;
  while (at < bytes.length) {
    const [name, afterName] = readCString(bytes, at, 'option name');
    if (name.length === 0) throw new DecodeError('empty option name', at);
    if (afterName >= bytes.length) throw new DecodeError(`option ${JSON.stringify(name)} has no value`, afterName);
    const [value, afterValue] = readCString(bytes, afterName, 'option value');
    const key = name.toLowerCase();
    if (!Object.hasOwn(options, key)) options[key] = value;
    at = afterValue;
  }
  return options;
}

/**
 * Decodes one TFTP datagram. Throws DecodeError (with the byte offset) for anything malformed;
 * never a RangeError. ACKs longer than 4 bytes are accepted (Pi 5 pads them with zeros).
 */
export function decodeTftpPacket(bytes: Uint8Array): TftpPacket {
  if (bytes.length < 2) throw new DecodeError('packet shorter than an opcode', bytes.length);
  const dv = view(bytes);
  const opcode = dv.getUint16(0);
  switch (opcode) {
    case TftpOpcode.RRQ:
    case TftpOpcode.WRQ: {
      const [filename, afterName] = readCString(bytes, 2, 'filename');
      if (filename.length === 0) throw new DecodeError('empty filename', 2);
      if (afterName >= bytes.length) throw new DecodeError('request has no mode', afterName);
      const [mode, afterMode] = readCString(bytes, afterName, 'mode');
      if (mode.length === 0) throw new DecodeError('empty mode', afterName);
      const options = readOptions(bytes, afterMode);
      return { type: opcode === TftpOpcode.RRQ ? 'rrq' : 'wrq', filename, mode: mode.toLowerCase(), options };
    }
    case TftpOpcode.DATA:
      if (bytes.length < 4) throw new DecodeError('DATA shorter than its header', bytes.length);
      return { type: 'data', block: dv.getUint16(2), data: bytes.slice(4) };
    case TftpOpcode.ACK:
      if (bytes.length < 4) throw new DecodeError('ACK shorter than 4 bytes', bytes.length);
      return { type: 'ack', block: dv.getUint16(2) };
    case TftpOpcode.ERROR: {
      if (bytes.length < 4) throw new DecodeError('ERROR shorter than its header', bytes.length);
      // Some clients omit the message's NUL; accept the rest of the packet as the message then.
      const end = bytes.indexOf(0, 4);
      const message = latin1.decode(bytes.subarray(4, end < 0 ? bytes.length : end));
      return { type: 'error', code: dv.getUint16(2), message };
    }
    case TftpOpcode.OACK:
      return { type: 'oack', options: readOptions(bytes, 2) };
    default:
      throw new DecodeError(`unknown opcode ${opcode}`, 0);
  }
}

function cStringLength(text: string): number {
  return text.length + 1;
}

function writeCString(out: Uint8Array, offset: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0 || code > 0xff) throw new RangeError(`character ${code} cannot be sent in a TFTP string`);
    out[offset + i] = code;
  }
  out[offset + text.length] = 0;
  return offset + text.length + 1;
}

function optionsLength(options: TftpOptions): number {
  let length = 0;
  for (const [name, value] of Object.entries(options)) length += cStringLength(name) + cStringLength(value);
  return length;
}

function writeOptions(out: Uint8Array, offset: number, options: TftpOptions): number {
  let at = offset;
  for (const [name, value] of Object.entries(options)) {
    at = writeCString(out, at, name);
    at = writeCString(out, at, value);
  }
  return at;
}

/** Encodes a packet into fresh bytes. Strings must be Latin-1 without NUL. */
export function encodeTftpPacket(packet: TftpPacket): Uint8Array {
  switch (packet.type) {
    case 'rrq':
    case 'wrq': {
      const out = new Uint8Array(2 + cStringLength(packet.filename) + cStringLength(packet.mode) + optionsLength(packet.options));
      view(out).setUint16(0, packet.type === 'rrq' ? TftpOpcode.RRQ : TftpOpcode.WRQ);
      let at = writeCString(out, 2, packet.filename);
      at = writeCString(out, at, packet.mode);
      writeOptions(out, at, packet.options);
      return out;
    }
    case 'data': {
      const out = new Uint8Array(4 + packet.data.length);
      writeDataHeader(out, packet.block);
      out.set(packet.data, 4);
      return out;
    }
    case 'ack': {
      const out = new Uint8Array(4);
      const dv = view(out);
      dv.setUint16(0, TftpOpcode.ACK);
      dv.setUint16(2, packet.block & 0xffff);
      return out;
    }
    case 'error': {
      const out = new Uint8Array(4 + cStringLength(packet.message));
      const dv = view(out);
      dv.setUint16(0, TftpOpcode.ERROR);
      dv.setUint16(2, packet.code);
      writeCString(out, 4, packet.message);
      return out;
    }
    case 'oack': {
      const out = new Uint8Array(2 + optionsLength(packet.options));
      view(out).setUint16(0, TftpOpcode.OACK);
      writeOptions(out, 2, packet.options);
      return out;
    }
  }
}

/** Writes a DATA opcode and (16-bit, wrapped) block number into the first 4 bytes of `out`. */
export function writeDataHeader(out: Uint8Array, block: number): void {
  out[0] = 0;
  out[1] = TftpOpcode.DATA;
  out[2] = (block >>> 8) & 0xff;
  out[3] = block & 0xff;
}

/**
 * Hot path for transfer sockets: the block number of a well-formed ACK (any length ≥ 4), or -1
 * when the datagram is not an ACK. Avoids building a packet object per received ACK.
 */
export function peekAckBlock(bytes: Uint8Array): number {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== TftpOpcode.ACK) return -1;
  return (bytes[2]! << 8) | bytes[3]!;
}
