import { DecodeError } from '@iot-tofu/errors';
import { describe, expect, it } from 'vitest';
import { DhcpEncodeError, DhcpOption, decodeDhcpMessage, encodeDhcpMessage, clientMac, messageType, optionText } from '../src/index.js';
import { fixturePath } from './fixtures.js';
import { readUdpFrames } from './pcap.js';

const golden = readUdpFrames(fixturePath('dnsmasq-proxy-reply.pcap'));
const piDiscover = golden[0]!.payload;

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.replace(/\s+/g, '').match(/../g) ?? [], (h) => parseInt(h, 16));
}

describe('decodeDhcpMessage', () => {
  it('decodes the Pi 3B-shaped DISCOVER of the golden capture', () => {
    const message = decodeDhcpMessage(piDiscover);
    expect(message).toMatchObject({ op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x26f30339, flags: 0, ciaddr: '0.0.0.0', sname: '', file: '' });
    expect(clientMac(message)).toBe('b8:27:eb:64:24:7d');
    expect(messageType(message)).toBe('discover');
    expect(optionText(message, DhcpOption.VendorClass)).toBe('PXEClient:Arch:00000:UNDI:002001');
    expect([...message.options.keys()]).toEqual([53, 55, 93, 94, 97, 60]);
    expect(message.options.get(DhcpOption.ClientGuid)).toEqual(hex('007d2464557d2464557d2464557d246455'));
  });

  it('round-trips: encoding the decoded message gives the same bytes', () => {
    for (const frame of golden) {
      const decoded = decodeDhcpMessage(frame.payload);
      expect(encodeDhcpMessage(decoded, { maxSize: 1500 })).toEqual(frame.payload);
    }
  });

  it('skips PAD, tolerates a missing END and concatenates split options (RFC 3396)', () => {
    const base = encodeDhcpMessage({ op: 1, xid: 1, chaddr: 'dc:a6:32:00:00:01' }, { minSize: 0 }).subarray(0, 240);
    const options = hex('00 00 35 01 01 0c 03 61 62 63 00 0c 02 64 65');
    const bytes = new Uint8Array(240 + options.length);
    bytes.set(base);
    bytes.set(options, 240);
    const message = decodeDhcpMessage(bytes);
    expect(messageType(message)).toBe('discover');
    expect(optionText(message, DhcpOption.HostName)).toBe('abcde');
  });

  it('reads options from file and sname when option 52 says so, in RFC 3396 order', () => {
    const bytes = encodeDhcpMessage({
      op: 1,
      xid: 7,
      chaddr: 'dc:a6:32:00:00:02',
      options: [
        [DhcpOption.MessageType, Uint8Array.of(1)],
        [DhcpOption.Overload, Uint8Array.of(3)],
      ],
    });
    bytes.set(hex('0c 02 61 62 ff'), 108); // file: host name "ab"
    bytes.set(hex('0c 01 63 3c 09 50 58 45 43 6c 69 65 6e 74'), 44); // sname: "c" + vendor class
    const message = decodeDhcpMessage(bytes);
    expect(optionText(message, DhcpOption.HostName)).toBe('abc');
    expect(optionText(message, DhcpOption.VendorClass)).toBe('PXEClient');
    expect(message.file).toBe('');
    expect(message.sname).toBe('');
  });

  it('NUL-trims sname and file', () => {
    const bytes = encodeDhcpMessage({ op: 2, xid: 3, chaddr: 'dc:a6:32:00:00:03', sname: '10.0.0.1', file: 'undionly.kpxe' });
    const message = decodeDhcpMessage(bytes);
    expect(message.sname).toBe('10.0.0.1');
    expect(message.file).toBe('undionly.kpxe');
  });

  const invalid: Array<[string, (b: Uint8Array) => Uint8Array, number]> = [
    ['shorter than 240 bytes', (b) => b.subarray(0, 239), 239],
    ['a wrong magic cookie', (b) => withByte(b, 236, 0x00), 236],
    ['hlen above 16', (b) => withByte(b, 2, 17), 2],
    ['an option running past the end', (b) => concatBytes(b.subarray(0, 240), hex('35 01 01 3c 20 50 58')), 243],
    ['an option without its length byte', (b) => concatBytes(b.subarray(0, 240), hex('35 01 01 3c')), 243],
    ['a bad overload value', (b) => concatBytes(b.subarray(0, 240), hex('34 01 07 ff')), 240],
  ];
  it.each(invalid)('rejects %s with a DecodeError at the offset', (_name, mutate, offset) => {
    const bytes = mutate(piDiscover.slice());
    expect(() => decodeDhcpMessage(bytes)).toThrow(DecodeError);
    try {
      decodeDhcpMessage(bytes);
    } catch (error) {
      expect((error as DecodeError).offset).toBe(offset);
    }
  });

  it('truncation sweep: every prefix decodes or throws DecodeError, never anything else', () => {
    for (const frame of golden) {
      let decodedPrefixes = 0;
      for (let length = 0; length < frame.payload.length; length++) {
        const prefix = frame.payload.slice(0, length);
        try {
          decodeDhcpMessage(prefix);
          decodedPrefixes += 1;
          // A prefix only decodes when it ends on an option boundary (END may be missing).
          expect(length).toBeGreaterThanOrEqual(240);
        } catch (error) {
          expect(error).toBeInstanceOf(DecodeError);
        }
      }
      expect(decodedPrefixes).toBeLessThan(frame.payload.length - 240);
    }
  });

  it('decodes from a Buffer slice that shares a pool (byteOffset ≠ 0)', () => {
    const pool = Buffer.alloc(piDiscover.length + 13);
    pool.set(piDiscover, 13);
    const message = decodeDhcpMessage(pool.subarray(13));
    expect(message.xid).toBe(0x26f30339);
    expect(clientMac(message)).toBe('b8:27:eb:64:24:7d');
  });
});

describe('encodeDhcpMessage', () => {
  it('pads to 300 bytes with zeros after END', () => {
    const bytes = encodeDhcpMessage({ op: 2, xid: 9, chaddr: 'dc:a6:32:00:00:04', options: [[53, Uint8Array.of(2)]] });
    expect(bytes.length).toBe(300);
    expect(Array.from(bytes.subarray(240, 244))).toEqual([0x35, 1, 2, 0xff]);
    expect(bytes.subarray(244).every((b) => b === 0)).toBe(true);
  });

  it('splits values longer than 255 bytes into consecutive pieces (RFC 3396)', () => {
    const long = new Uint8Array(300).fill(0x41);
    const bytes = encodeDhcpMessage({ op: 2, xid: 9, chaddr: 'dc:a6:32:00:00:04', options: [[12, long]] }, { maxSize: 1500 });
    expect(bytes[240]).toBe(12);
    expect(bytes[241]).toBe(255);
    expect(bytes[240 + 2 + 255]).toBe(12);
    expect(bytes[240 + 2 + 255 + 1]).toBe(45);
    expect(decodeDhcpMessage(bytes).options.get(12)).toEqual(long);
  });

  it('keeps a reply within 548 bytes unless the caller allows more', () => {
    const big = new Uint8Array(400);
    expect(() => encodeDhcpMessage({ op: 2, xid: 1, chaddr: 'dc:a6:32:00:00:05', options: [[12, big]] })).toThrow(DhcpEncodeError);
    expect(
      encodeDhcpMessage({ op: 2, xid: 1, chaddr: 'dc:a6:32:00:00:05', options: [[12, big]] }, { maxSize: 1000 }).length,
    ).toBeGreaterThan(548);
  });

  it.each([
    ['a bad IP', { ciaddr: '10.0.0.256' }],
    ['a file name that leaves no room for NUL', { file: 'x'.repeat(128) }],
    ['a server name that leaves no room for NUL', { sname: 'x'.repeat(64) }],
    ['option code 0', { options: [[0, Uint8Array.of(1)]] as Array<[number, Uint8Array]> }],
    ['option code 255', { options: [[255, Uint8Array.of(1)]] as Array<[number, Uint8Array]> }],
    ['a byte field out of range', { hops: 256 }],
  ])('rejects %s', (_name, fields) => {
    expect(() => encodeDhcpMessage({ op: 2, xid: 1, chaddr: 'dc:a6:32:00:00:06', ...fields })).toThrow(DhcpEncodeError);
  });

  it('returns fresh bytes on every call', () => {
    const init = { op: 2, xid: 1, chaddr: 'dc:a6:32:00:00:07' };
    const a = encodeDhcpMessage(init);
    const b = encodeDhcpMessage(init);
    a[0] = 9;
    expect(b[0]).toBe(2);
  });
});

function withByte(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[offset] = value;
  return copy;
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
