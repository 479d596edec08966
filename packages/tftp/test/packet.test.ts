import { describe, expect, it } from 'vitest';
import { DecodeError } from '@iot-tofu/errors';
import { decodeTftpPacket, encodeTftpPacket, peekAckBlock, fromNetascii, toNetascii } from '../src/index.js';
import type { TftpPacket } from '../src/index.js';

const bytes = (...parts: (string | number[])[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? Array.from(p, (c) => c.charCodeAt(0)) : p)));

const samples: [string, TftpPacket][] = [
  ['RRQ without options', { type: 'rrq', filename: 'bootcode.bin', mode: 'octet', options: {} }],
  ['Pi 4 RRQ', { type: 'rrq', filename: '9ffefdef/start4.elf', mode: 'octet', options: { tsize: '0', blksize: '1468' } }],
  ['WRQ', { type: 'wrq', filename: 'up.bin', mode: 'netascii', options: { windowsize: '16' } }],
  ['DATA', { type: 'data', block: 65535, data: Uint8Array.of(1, 2, 3, 0, 255) }],
  ['empty DATA', { type: 'data', block: 0, data: new Uint8Array(0) }],
  ['ACK', { type: 'ack', block: 513 }],
  ['ERROR', { type: 'error', code: 1, message: 'File not found' }],
  ['OACK', { type: 'oack', options: { blksize: '1468', tsize: '2974208' } }],
];

describe('TFTP codec', () => {
  it.each(samples)('round-trips %s', (_name, packet) => {
    const encoded = encodeTftpPacket(packet);
    expect(decodeTftpPacket(encoded)).toEqual(packet);
    // fresh bytes every time: encoders never hand out shared buffers
    expect(encodeTftpPacket(packet)).not.toBe(encoded);
  });

  it.each(samples.filter(([, p]) => p.type !== 'oack'))('rejects every truncation of %s with DecodeError', (_name, packet) => {
    const encoded = encodeTftpPacket(packet);
    // Prefixes that end exactly on a field boundary may still be valid packets (options are
    // optional, DATA may be empty); every other prefix must throw a DecodeError, never a RangeError.
    for (let length = 0; length < encoded.length; length++) {
      const prefix = encoded.subarray(0, length);
      let outcome: unknown;
      try {
        outcome = decodeTftpPacket(prefix);
      } catch (error) {
        expect(error).toBeInstanceOf(DecodeError);
        expect((error as DecodeError).offset).toBeLessThanOrEqual(length);
        continue;
      }
      expect(['data', 'rrq', 'wrq', 'error']).toContain((outcome as TftpPacket).type);
    }
  });

  it('wire bytes match RFC 1350 / 2347 layouts', () => {
    expect(encodeTftpPacket({ type: 'rrq', filename: 'a', mode: 'octet', options: { tsize: '0' } })).toEqual(
      bytes([0, 1], 'a', [0], 'octet', [0], 'tsize', [0], '0', [0]),
    );
    expect(encodeTftpPacket({ type: 'ack', block: 0x10203 })).toEqual(Uint8Array.of(0, 4, 0x02, 0x03));
    expect(encodeTftpPacket({ type: 'error', code: 5, message: 'Unknown transfer ID' })).toEqual(
      bytes([0, 5, 0, 5], 'Unknown transfer ID', [0]),
    );
  });

  it('lower-cases mode and option names, keeps the first of repeated options', () => {
    const packet = decodeTftpPacket(bytes([0, 1], 'F.BIN', [0], 'OcTeT', [0], 'BlkSize', [0], '1024', [0], 'blksize', [0], '8', [0]));
    expect(packet).toEqual({ type: 'rrq', filename: 'F.BIN', mode: 'octet', options: { blksize: '1024' } });
  });

  it('accepts ACKs padded beyond 4 bytes (Pi 5)', () => {
    const padded = Uint8Array.of(0, 4, 0, 7, 0, 0, 0, 0);
    expect(decodeTftpPacket(padded)).toEqual({ type: 'ack', block: 7 });
    expect(peekAckBlock(padded)).toBe(7);
    expect(peekAckBlock(Uint8Array.of(0, 4, 0xff, 0xff))).toBe(65535);
    expect(peekAckBlock(Uint8Array.of(0, 3, 0, 1))).toBe(-1);
    expect(peekAckBlock(Uint8Array.of(0, 4, 0))).toBe(-1);
  });

  it('accepts an ERROR without its trailing NUL', () => {
    expect(decodeTftpPacket(bytes([0, 5, 0, 0], 'Early terminate'))).toEqual({ type: 'error', code: 0, message: 'Early terminate' });
  });

  it.each([
    ['unknown opcode', [0, 9, 0, 0], 0],
    ['opcode 0', [0, 0], 0],
    ['empty filename', [0, 1, 0, 111, 0], 2],
    ['filename without NUL', [0, 1, 97, 98], 4],
    ['option without value', [0, 1, 97, 0, 111, 0, 98, 0], 8],
    ['empty option name', [0, 1, 97, 0, 111, 0, 0, 49, 0], 6],
  ])('rejects %s', (_name, raw, offset) => {
    expect(() => decodeTftpPacket(Uint8Array.from(raw))).toThrow(DecodeError);
    try {
      decodeTftpPacket(Uint8Array.from(raw));
    } catch (error) {
      expect((error as DecodeError).offset).toBe(offset);
    }
  });

  it('decodes from a Buffer view that does not start at offset 0 of its ArrayBuffer', () => {
    const pool = new Uint8Array(64);
    pool.set([0, 4, 1, 2], 40);
    expect(decodeTftpPacket(pool.subarray(40, 44))).toEqual({ type: 'ack', block: 258 });
  });

  it('survives random bytes (throws DecodeError or decodes, nothing else)', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 16) & 0xff;
    };
    for (let i = 0; i < 5000; i++) {
      const packet = Uint8Array.from({ length: rand() % 40 }, (_v, k) =>
        k === 0 ? 0 : k === 1 ? rand() % 8 : rand() % 4 === 0 ? 0 : rand(),
      );
      try {
        decodeTftpPacket(packet);
      } catch (error) {
        expect(error).toBeInstanceOf(DecodeError);
      }
    }
  });

  it('refuses to encode strings that cannot go on the wire', () => {
    expect(() => encodeTftpPacket({ type: 'error', code: 0, message: 'a\0b' })).toThrow(RangeError);
  });
});

describe('netascii', () => {
  it.each([
    ['plain', 'abc', 'abc'],
    ['LF', 'a\nb\n', 'a\r\nb\r\n'],
    ['bare CR', 'a\rb', 'a\r\0b'],
    ['CR LF already', 'a\r\nb', 'a\r\0\r\nb'],
    ['empty', '', ''],
  ])('%s', (_name, local, wire) => {
    const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    expect(toNetascii(enc(local))).toEqual(enc(wire));
    expect(fromNetascii(enc(wire))).toEqual(enc(local));
  });
});
