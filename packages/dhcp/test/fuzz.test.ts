import { DecodeError } from '@iot-tofu/errors';
import { describe, expect, it } from 'vitest';
import {
  decideFullReply,
  decideProxyReply,
  decodeDhcpMessage,
  encodeDhcpMessage,
  LeasePool,
  type DhcpMessage,
  type FullDhcpPolicy,
  type ProxyPolicy,
} from '../src/index.js';
import { fixturePath } from './fixtures.js';
import { readUdpFrames } from './pcap.js';

// The decisions of both DHCP modes under random and mutated datagrams.

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
  let message: DhcpMessage;
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

describe('proxy mode fuzz: no exception escapes, garbage gets no reply', () => {
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

const S = '10.77.0.2';
const fullPolicy: FullDhcpPolicy = {
  serverIp: S,
  netmask: '255.255.255.0',
  router: '10.77.0.1',
  dns: ['10.77.0.1'],
  leaseTimeSec: 600,
  staticAddressFor: (mac) => (mac.endsWith(':07') ? '10.77.0.20' : undefined),
};
const boot: ProxyPolicy = {
  serverIp: S,
  answer: 'any-pi',
  isRegistered: () => false,
  pxe: { bios: 'undionly.kpxe' },
  pi3RepeatDelayMs: 1200,
};

/**
 * Random and mutated DHCP traffic (all eight message types, few MACs so they collide, addresses
 * from the pool, the server's id and foreign ones) into the full-mode decision with a small pool
 * and a clock that moves: nothing throws, every encoded reply fits, and after every step no address
 * is held by two clients and every OFFER/ACK names an address its client holds.
 */
describe('full mode decision fuzz', () => {
  it.each([1, 2, 3, 4])('seed %i: 5000 requests keep the lease table consistent', (seed) => {
    const random = prng(seed);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const pool = new LeasePool({
      rangeStart: '10.77.0.100',
      rangeEnd: '10.77.0.107',
      netmask: '255.255.255.0',
      serverIp: S,
      router: '10.77.0.1',
      leaseTimeSec: 600,
      offerHoldMs: 5_000,
      declineHoldMs: 20_000,
    });
    const macs = Array.from({ length: 24 }, (_, i) => `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`);
    const addresses = [
      '10.77.0.100',
      '10.77.0.103',
      '10.77.0.107',
      '10.77.0.20',
      '10.77.0.2',
      '10.77.0.255',
      '10.77.1.5',
      '0.0.0.0',
      '10.77.0.150',
    ];
    let now = 1_800_000_000_000;
    const counts: Record<string, number> = {};
    for (let i = 0; i < 5000; i++) {
      now += Math.floor(random() * 400);
      const mac = pick(macs);
      const type = 1 + Math.floor(random() * 8);
      const options: Array<[number, Uint8Array]> = [[53, Uint8Array.of(type)]];
      // Half the time a well-behaved client: it names the address it holds with us.
      const own = random() < 0.5 ? pool.leaseOf(mac)?.address : undefined;
      const address = () => own ?? pick(addresses);
      if (random() < 0.6) options.push([50, Uint8Array.from(address().split('.').map(Number))]);
      if (random() < 0.5) options.push([54, Uint8Array.from(pick([S, S, '10.77.0.1', '10.9.9.9']).split('.').map(Number))]);
      if (random() < 0.3) options.push([61, Uint8Array.of(1, ...mac.split(':').map((p) => parseInt(p, 16)))]);
      if (random() < 0.3) options.push([60, Uint8Array.from(Buffer.from('PXEClient:Arch:00000:UNDI:002001'))], [93, Uint8Array.of(0, 0)]);
      let bytes = encodeDhcpMessage({
        op: random() < 0.95 ? 1 : 2,
        xid: i,
        chaddr: mac,
        ciaddr: random() < 0.3 ? address() : '0.0.0.0',
        giaddr: random() < 0.1 ? pick(['10.77.0.50', '192.168.1.1']) : '0.0.0.0',
        options,
      });
      if (random() < 0.2) {
        bytes = bytes.slice();
        for (let flips = 0; flips < 3; flips++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      let request: DhcpMessage;
      try {
        request = decodeDhcpMessage(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(DecodeError);
        counts.malformed = (counts.malformed ?? 0) + 1;
        continue;
      }
      const decision = decideFullReply(request, { policy: fullPolicy, boot, pool, now });
      counts[decision.action === 'reply' ? decision.type : decision.action === 'noted' ? decision.outcome : decision.reason] =
        (counts[decision.action === 'reply' ? decision.type : decision.action === 'noted' ? decision.outcome : decision.reason] ?? 0) + 1;
      if (decision.action === 'reply') {
        expect(() => encodeDhcpMessage(decision.reply, { maxSize: decision.maxSize })).not.toThrow();
        if (decision.type !== 'nak' && decision.address !== undefined)
          expect(pool.holderOf(decision.address)?.mac, `step ${i}`).toBe(decision.mac);
      }
      // Invariant: each address one holder, each client one address, active holds never shared.
      const leases = pool.leases({ offers: true });
      expect(new Set(leases.map((l) => l.address)).size).toBe(leases.length);
      expect(new Set(leases.map((l) => l.mac)).size).toBe(leases.length);
    }
    // The run exercised the interesting paths.
    for (const outcome of ['offer', 'ack', 'nak', 'released', 'declined', 'pool-exhausted', 'other-server', 'not-our-lease', 'malformed'])
      expect(counts[outcome] ?? 0, outcome).toBeGreaterThan(0);
  });
});
