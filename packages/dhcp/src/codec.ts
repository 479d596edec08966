import { DecodeError } from '@iot-tofu/errors';
import { macFromBytes, macToBytes } from '@iot-tofu/rpi';
import { DhcpEncodeError } from './errors.js';
import {
  DEFAULT_MAX_MESSAGE_SIZE,
  DhcpOption,
  MAGIC_COOKIE,
  MIN_MESSAGE_SIZE,
  OPTIONS_OFFSET,
  messageTypeName,
  type DhcpMessageTypeName,
} from './options.js';

/**
 * One decoded DHCP/BOOTP message (RFC 2131 section 2). Options keep wire order (a Map iterates in
 * insertion order); an option sent in several pieces (RFC 3396) is one concatenated value here.
 */
export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The full 16-byte client hardware address field. */
  chaddr: Uint8Array;
  /** NUL-trimmed; empty when the field carries options (overload, option 52). */
  sname: string;
  file: string;
  options: Map<number, Uint8Array>;
}

/** What encodeDhcpMessage needs; every header field not given is zero. */
export interface DhcpMessageInit {
  op: number;
  xid: number;
  /** Bytes (up to 16) or a MAC address string. */
  chaddr: Uint8Array | string;
  htype?: number;
  /** Defaults to 6 for a MAC string, else the length of chaddr. */
  hlen?: number;
  hops?: number;
  secs?: number;
  flags?: number;
  ciaddr?: string;
  yiaddr?: string;
  siaddr?: string;
  giaddr?: string;
  sname?: string;
  file?: string;
  /** Written in iteration order; values longer than 255 bytes are split (RFC 3396). */
  options?: Iterable<readonly [number, Uint8Array]>;
}

export interface EncodeOptions {
  /** Largest message the receiver accepts (548 unless the client sent option 57). */
  maxSize?: number;
  /** Zero-pad after END up to this size (BOOTP minimum 300). */
  minSize?: number;
}

const SNAME_OFFSET = 44;
const SNAME_LENGTH = 64;
const FILE_OFFSET = 108;
const FILE_LENGTH = 128;
const COOKIE_OFFSET = 236;

export function decodeDhcpMessage(bytes: Uint8Array): DhcpMessage {
  if (bytes.length < OPTIONS_OFFSET) {
    throw new DecodeError(`DHCP message too short: ${bytes.length} bytes, need at least ${OPTIONS_OFFSET}`, bytes.length);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = bytes[2] ?? 0;
  if (hlen > 16) throw new DecodeError(`hardware address length ${hlen} exceeds 16`, 2);
  if (view.getUint32(COOKIE_OFFSET) !== MAGIC_COOKIE) throw new DecodeError('missing DHCP magic cookie', COOKIE_OFFSET);

  const options = new Map<number, Uint8Array>();
  readOptions(bytes, OPTIONS_OFFSET, bytes.length, options, true);
  const overload = options.get(DhcpOption.Overload);
  let overloadFlags = 0;
  if (overload !== undefined) {
    if (overload.length !== 1 || overload[0] === undefined || overload[0] < 1 || overload[0] > 3) {
      throw new DecodeError('invalid option overload (52) value', OPTIONS_OFFSET);
    }
    overloadFlags = overload[0];
    // RFC 3396 order: options field, then file, then sname.
    if (overloadFlags & 1) readOptions(bytes, FILE_OFFSET, FILE_OFFSET + FILE_LENGTH, options, false);
    if (overloadFlags & 2) readOptions(bytes, SNAME_OFFSET, SNAME_OFFSET + SNAME_LENGTH, options, false);
  }

  return {
    op: bytes[0] ?? 0,
    htype: bytes[1] ?? 0,
    hlen,
    hops: bytes[3] ?? 0,
    xid: view.getUint32(4),
    secs: view.getUint16(8),
    flags: view.getUint16(10),
    ciaddr: ipv4FromBytes(bytes, 12),
    yiaddr: ipv4FromBytes(bytes, 16),
    siaddr: ipv4FromBytes(bytes, 20),
    giaddr: ipv4FromBytes(bytes, 24),
    chaddr: bytes.slice(28, 44),
    sname: overloadFlags & 2 ? '' : nulTrimmed(bytes, SNAME_OFFSET, SNAME_LENGTH),
    file: overloadFlags & 1 ? '' : nulTrimmed(bytes, FILE_OFFSET, FILE_LENGTH),
    options,
  };
}

/** Walks code/length/value triples in [start, end); pad skipped, END or the region's end stops. */
function readOptions(bytes: Uint8Array, start: number, end: number, into: Map<number, Uint8Array>, allowOverload: boolean): void {
  let offset = start;
  while (offset < end) {
    const code = bytes[offset] as number;
    if (code === DhcpOption.Pad) {
      offset += 1;
      continue;
    }
    if (code === DhcpOption.End) return;
    if (offset + 1 >= end) throw new DecodeError(`option ${code} has no length byte`, offset);
    const length = bytes[offset + 1] as number;
    const valueStart = offset + 2;
    if (valueStart + length > end) throw new DecodeError(`option ${code} length ${length} runs past the end`, offset);
    // An overload option inside sname/file would make the walk recursive: ignore it there.
    if (code !== DhcpOption.Overload || allowOverload) {
      const value = bytes.subarray(valueStart, valueStart + length);
      const previous = into.get(code);
      into.set(code, previous ? concat(previous, value) : value.slice());
    }
    offset = valueStart + length;
  }
}

export function encodeDhcpMessage(message: DhcpMessageInit, encodeOptions: EncodeOptions = {}): Uint8Array {
  const maxSize = encodeOptions.maxSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  const minSize = encodeOptions.minSize ?? MIN_MESSAGE_SIZE;
  const chaddr = typeof message.chaddr === 'string' ? macToBytes(message.chaddr) : message.chaddr;
  if (chaddr.length > 16) throw new DhcpEncodeError(`chaddr is ${chaddr.length} bytes, at most 16 fit`);

  const options = [...(message.options ?? [])];
  let optionsLength = 1; // END
  for (const [code, value] of options) {
    if (!Number.isInteger(code) || code <= DhcpOption.Pad || code >= DhcpOption.End) {
      throw new DhcpEncodeError(`option code ${code} cannot carry a value`);
    }
    optionsLength += value.length === 0 ? 2 : value.length + 2 * Math.ceil(value.length / 255);
  }

  const length = Math.max(OPTIONS_OFFSET + optionsLength, minSize);
  if (length > maxSize) throw new DhcpEncodeError(`message would be ${length} bytes, the receiver accepts ${maxSize}`);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  out[0] = byteField('op', message.op);
  out[1] = byteField('htype', message.htype ?? 1);
  out[2] = byteField('hlen', message.hlen ?? (typeof message.chaddr === 'string' ? 6 : chaddr.length));
  out[3] = byteField('hops', message.hops ?? 0);
  view.setUint32(4, message.xid >>> 0);
  view.setUint16(8, message.secs ?? 0);
  view.setUint16(10, message.flags ?? 0);
  ipField('ciaddr', message.ciaddr, out, 12);
  ipField('yiaddr', message.yiaddr, out, 16);
  ipField('siaddr', message.siaddr, out, 20);
  ipField('giaddr', message.giaddr, out, 24);
  out.set(chaddr, 28);
  out.set(textField('sname', message.sname ?? '', SNAME_LENGTH), SNAME_OFFSET);
  out.set(textField('file', message.file ?? '', FILE_LENGTH), FILE_OFFSET);
  view.setUint32(COOKIE_OFFSET, MAGIC_COOKIE);
  let offset = OPTIONS_OFFSET;
  for (const [code, value] of options) {
    // Values longer than 255 bytes go out as consecutive pieces of the same code (RFC 3396).
    let start = 0;
    do {
      const piece = value.subarray(start, start + 255);
      out[offset] = code;
      out[offset + 1] = piece.length;
      out.set(piece, offset + 2);
      offset += 2 + piece.length;
      start += 255;
    } while (start < value.length);
  }
  out[offset] = DhcpOption.End;
  return out;
}

/** The client's MAC when chaddr is an Ethernet address, else undefined. */
export function clientMac(message: Pick<DhcpMessage, 'htype' | 'hlen' | 'chaddr'>): string | undefined {
  if (message.htype !== 1 || message.hlen !== 6) return undefined;
  return macFromBytes(message.chaddr);
}

export function messageType(message: Pick<DhcpMessage, 'options'>): DhcpMessageTypeName | undefined {
  const value = message.options.get(DhcpOption.MessageType);
  return value?.length === 1 ? messageTypeName(value[0]) : undefined;
}

/** An option as Latin-1 text (vendor class, user class …), or undefined when absent. */
export function optionText(message: Pick<DhcpMessage, 'options'>, code: number): string | undefined {
  const value = message.options.get(code);
  return value === undefined ? undefined : latin1(value);
}

export function ipv4FromBytes(bytes: Uint8Array, offset = 0): string {
  return `${bytes[offset] ?? 0}.${bytes[offset + 1] ?? 0}.${bytes[offset + 2] ?? 0}.${bytes[offset + 3] ?? 0}`;
}

/** Parses a dotted quad into `into` (4 bytes); false when it is not one (no regex: hot path). */
function parseIpv4Into(text: string, into: Uint8Array): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i === text.length ? 46 : text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 3 || value > 255) return false;
      into[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + (c - 48);
      digits += 1;
    } else return false;
  }
  return part === 4;
}

export function isIpv4(text: string): boolean {
  return parseIpv4Into(text, new Uint8Array(4));
}

export function ipv4ToBytes(text: string): Uint8Array {
  const out = new Uint8Array(4);
  if (!parseIpv4Into(text, out)) throw new DhcpEncodeError(`${JSON.stringify(text)} is not a dotted-quad IPv4 address`);
  return out;
}

export function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

function latin1(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i] as number);
  return text;
}

function nulTrimmed(bytes: Uint8Array, offset: number, length: number): string {
  const field = bytes.subarray(offset, offset + length);
  const nul = field.indexOf(0);
  return latin1(nul === -1 ? field : field.subarray(0, nul));
}

function textField(name: string, text: string, length: number): Uint8Array {
  // Keep room for a terminating NUL: some PXE ROMs read these fields as C strings.
  if (text.length > length - 1) throw new DhcpEncodeError(`${name} is ${text.length} characters, at most ${length - 1} fit`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point: any Latin-1 byte but NUL
  if (/[^\x01-\xff]/.test(text)) throw new DhcpEncodeError(`${name} must be Latin-1 text without NUL`);
  return asciiBytes(text);
}

function ipField(name: string, text: string | undefined, out: Uint8Array, offset: number): void {
  if (text === undefined || text === '0.0.0.0') return; // already zero
  if (!parseIpv4Into(text, out.subarray(offset, offset + 4)))
    throw new DhcpEncodeError(`${name} ${JSON.stringify(text)} is not a dotted-quad IPv4 address`);
}

function byteField(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 255) throw new DhcpEncodeError(`${name} ${value} is not a byte`);
  return value;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
