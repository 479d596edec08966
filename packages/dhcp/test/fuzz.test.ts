import { DecodeError } from '@iot-tofu/errors';
import { describe, expect, it } from 'vitest';
import { decideProxyReply, decodeDhcpMessage, encodeDhcpMessage, type ProxyPolicy } from '../src/index.js';
import { fixturePath } from './fixtures.js';
import { readUdpFrames } from './pcap.js';

/** Small deterministic PRNG (mulberry32) so a failing case can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const policy: ProxyPolicy = {
  serverIp: '10.77.0.2',
  answer: 'any-pi',
  isRegistered: () => false,
  pxe: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi', uefiArm64: 'snp.efi', ipxeScript: 'boot.ipxe' },
  pi3RepeatDelayMs: 1200,
};

const seeds = [
  ...readUdpFrames(fixturePath('dnsmasq-proxy-reply.pcap')),
  ...readUdpFrames(fixturePath('ipxe-qemu-proxydhcp-boot.pcap')),
  ...readUdpFrames(fixturePath('uefi-x64-qemu-proxydhcp-boot.pcap')),
]
  .filter((f) => f.dstPort === 67 || f.dstPort === 4011)
  .map((f) => f.payload);

/** Runs one datagram through everything the server does; returns whether it would be answered. */
function process(bytes: Uint8Array, port: 'dhcp' | 'pxe'): boolean {
  let message;
  try {
    message = decodeDhcpMessage(bytes);
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    return false;
  }
  const decision = decideProxyReply(message, { port, policy });
  if (decision.action !== 'reply') return false;
  const reply = encodeDhcpMessage(decision.reply, { maxSize: decision.maxSize });
  expect(reply.length).toBeLessThanOrEqual(decision.maxSize);
  expect(reply.length).toBeGreaterThanOrEqual(300);
  return true;
}

describe('fuzz: no exception escapes, garbage gets no reply', () => {
  it('random byte strings (0..700 bytes)', () => {
    const random = prng(0xdecade);
    let replies = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = Uint8Array.from({ length: Math.floor(random() * 700) }, () => Math.floor(random() * 256));
      if (process(bytes, random() < 0.5 ? 'dhcp' : 'pxe')) replies += 1;
    }
    expect(replies).toBe(0);
  });

  it('random options behind a valid header and cookie', () => {
    const random = prng(0xc0ffee);
    const header = seeds[0]!.subarray(0, 240);
    let decoded = 0;
    let replies = 0;
    for (let i = 0; i < 20_000; i++) {
      const tail = Uint8Array.from({ length: Math.floor(random() * 400) }, () => Math.floor(random() * 256));
      const bytes = new Uint8Array(240 + tail.length);
      bytes.set(header);
      bytes.set(tail, 240);
      try {
        decodeDhcpMessage(bytes);
        decoded += 1;
      } catch {
        // counted below through process()
      }
      if (process(bytes, 'dhcp')) replies += 1;
    }
    expect(decoded).toBeGreaterThan(0); // the walk really ran on accepted inputs too
    expect(replies).toBe(0); // random options never form a PXE DISCOVER
  });

  it('mutated real requests (byte flips, truncation, extension, length bytes)', () => {
    const random = prng(0xbadf00d);
    let replies = 0;
    for (let i = 0; i < 30_000; i++) {
      const seed = seeds[Math.floor(random() * seeds.length)]!;
      let bytes = seed.slice();
      const mutations = 1 + Math.floor(random() * 4);
      for (let m = 0; m < mutations; m++) {
        const choice = random();
        if (choice < 0.5) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
        else if (choice < 0.7) bytes = bytes.slice(0, Math.floor(random() * bytes.length));
        else if (choice < 0.85) {
          const grown = new Uint8Array(bytes.length + Math.floor(random() * 64));
          grown.set(bytes);
          for (let k = bytes.length; k < grown.length; k++) grown[k] = Math.floor(random() * 256);
          bytes = grown;
        } else if (bytes.length > 241) {
          // Corrupt an option length byte somewhere in the options area.
          bytes[241 + Math.floor(random() * (bytes.length - 241))] = 0xff;
        }
      }
      if (process(bytes, random() < 0.8 ? 'dhcp' : 'pxe')) replies += 1;
    }
    // Some mutants stay valid PXE requests and may be answered; the point is that nothing threw.
    expect(replies).toBeGreaterThan(0);
  });
});
