import { describe, expect, it } from 'vitest';
import {
  asciiBytes,
  decideFullReply,
  decideProxyReply,
  decodeDhcpMessage,
  encodeDhcpMessage,
  ipv4FromBytes,
  LeasePool,
  offersRaspberryPiBoot,
  type DhcpMessage,
  type FullDecision,
  type FullDhcpPolicy,
  type ProxyPolicy,
} from '../src/index.js';
import { PXE_ARCH0, pi3RomGuid, pi4Guid, pi5Guid } from './requests.js';

const S = '10.77.0.2';
const T0 = 1_800_000_000_000;
const PI4_MAC = 'dc:a6:32:01:36:c2';
const PI3_MAC = 'b8:27:eb:64:24:7d';
const PLAIN = '02:00:00:00:0c:01';

const policy: FullDhcpPolicy = {
  serverIp: S,
  netmask: '255.255.255.0',
  router: '10.77.0.1',
  dns: ['10.77.0.1', '9.9.9.9'],
  leaseTimeSec: 3600,
};
const boot: ProxyPolicy = {
  serverIp: S,
  answer: 'registered',
  isRegistered: ({ serial, mac }) => serial === 'ab5a4158' || mac === PI3_MAC,
  pxe: { bios: 'undionly.kpxe' },
  pi3RepeatDelayMs: 1200,
};
const newPool = () =>
  new LeasePool({
    rangeStart: '10.77.0.100',
    rangeEnd: '10.77.0.103',
    netmask: '255.255.255.0',
    serverIp: S,
    router: '10.77.0.1',
    leaseTimeSec: 3600,
  });

interface Shape {
  mac: string;
  type: number;
  pxe?: 'pi4' | 'pi5' | 'pi3' | 'bios';
  requested?: string;
  serverId?: string;
  ciaddr?: string;
  giaddr?: string;
  clientId?: Uint8Array;
  hostname?: string;
  flags?: number;
}

function msg(shape: Shape): DhcpMessage {
  const options: Array<[number, Uint8Array]> = [[53, Uint8Array.of(shape.type)]];
  if (shape.clientId) options.push([61, shape.clientId]);
  if (shape.hostname) options.push([12, asciiBytes(shape.hostname)]);
  if (shape.requested) options.push([50, Uint8Array.from(shape.requested.split('.').map(Number))]);
  if (shape.serverId) options.push([54, Uint8Array.from(shape.serverId.split('.').map(Number))]);
  if (shape.pxe) {
    options.push([93, Uint8Array.of(0, 0)], [94, Uint8Array.of(1, 2, 1)]);
    options.push([
      97,
      shape.pxe === 'pi4' ? pi4Guid : shape.pxe === 'pi5' ? pi5Guid : shape.pxe === 'pi3' ? pi3RomGuid : new Uint8Array(17),
    ]);
    options.push([60, asciiBytes(PXE_ARCH0)]);
  }
  return decodeDhcpMessage(
    encodeDhcpMessage({
      op: 1,
      xid: 0x1234,
      chaddr: shape.mac,
      ciaddr: shape.ciaddr ?? '0.0.0.0',
      giaddr: shape.giaddr ?? '0.0.0.0',
      flags: shape.flags ?? 0,
      options,
    }),
  );
}

const decide = (pool: LeasePool, shape: Shape, now = T0, p: FullDhcpPolicy = policy, b: ProxyPolicy = boot): FullDecision =>
  decideFullReply(msg(shape), { policy: p, boot: b, pool, now });

function wire(decision: FullDecision): DhcpMessage {
  if (decision.action !== 'reply') throw new Error(`expected a reply, got ${JSON.stringify(decision)}`);
  return decodeDhcpMessage(encodeDhcpMessage(decision.reply, { maxSize: decision.maxSize }));
}
const ip = (m: DhcpMessage, code: number) => {
  const v = m.options.get(code);
  return v ? ipv4FromBytes(v) : undefined;
};
const u32 = (m: DhcpMessage, code: number) => {
  const v = m.options.get(code);
  return v ? Buffer.from(v).readUInt32BE(0) : undefined;
};

describe('full mode DORA', () => {
  it('DISCOVER → OFFER with address options; REQUEST (selecting) → ACK, lease bound', () => {
    const pool = newPool();
    const offer = decide(pool, { mac: PLAIN, type: 1, hostname: 'box-1\u0007' });
    expect(offer).toMatchObject({
      action: 'reply',
      type: 'offer',
      address: '10.77.0.100',
      probe: '10.77.0.100',
      persist: false,
      broadcast: false,
    });
    const o = wire(offer);
    expect(o.yiaddr).toBe('10.77.0.100');
    expect(o.siaddr).toBe(S);
    expect([...o.options.keys()]).toEqual([53, 54, 51, 58, 59, 1, 28, 3, 6]);
    expect(ip(o, 54)).toBe(S);
    expect(ip(o, 1)).toBe('255.255.255.0');
    expect(ip(o, 28)).toBe('10.77.0.255');
    expect(ip(o, 3)).toBe('10.77.0.1');
    expect(Buffer.from(o.options.get(6)!).toString('hex')).toBe('0a4d000109090909');
    expect([u32(o, 51), u32(o, 58), u32(o, 59)]).toEqual([3600, 1800, 3150]);
    expect(offersRaspberryPiBoot(o.options.get(43))).toBe(false);

    const ack = decide(pool, { mac: PLAIN, type: 3, requested: '10.77.0.100', serverId: S }, T0 + 100);
    expect(ack).toMatchObject({ action: 'reply', type: 'ack', address: '10.77.0.100', persist: true });
    expect(ack.action === 'reply' && ack.probe).toBeFalsy();
    expect(wire(ack).yiaddr).toBe('10.77.0.100');
    expect(pool.leaseOf(PLAIN)).toMatchObject({ state: 'bound', expiresAt: T0 + 100 + 3_600_000, hostname: 'box-1' });
  });

  it('a registered Pi 4 gets the address and the exact proxy boot options (60, 97, 43) in the same OFFER and ACK', () => {
    const pool = newPool();
    const proxy = decideProxyReply(msg({ mac: PI4_MAC, type: 1, pxe: 'pi4' }), { port: 'dhcp', policy: boot });
    if (proxy.action !== 'reply') throw new Error('proxy should answer');
    const offer = wire(decide(pool, { mac: PI4_MAC, type: 1, pxe: 'pi4' }));
    expect(offer.yiaddr).toBe('10.77.0.100');
    for (const code of [60, 97, 43])
      expect(Buffer.from(offer.options.get(code)!).equals(Buffer.from(proxy.reply.options.get(code)!)), `option ${code}`).toBe(true);
    expect(offersRaspberryPiBoot(offer.options.get(43))).toBe(true);
    // Address options first, boot options after (43 before any 66).
    expect([...offer.options.keys()]).toEqual([53, 54, 51, 58, 59, 1, 28, 3, 6, 60, 97, 43]);
    const ack = wire(decide(pool, { mac: PI4_MAC, type: 3, pxe: 'pi4', requested: '10.77.0.100', serverId: S }));
    expect(offersRaspberryPiBoot(ack.options.get(43))).toBe(true);
    expect(pool.leaseOf(PI4_MAC)?.serial).toBe('ab5a4158');
  });

  it('an unregistered Pi (registered mode) gets an address without the boot menu', () => {
    const d = wire(decide(newPool(), { mac: 'e4:5f:01:00:00:77', type: 1, pxe: 'pi5' }));
    expect(d.yiaddr).toBe('10.77.0.100');
    expect(d.options.has(43)).toBe(false);
  });

  it('BIOS PXE gets its boot file, siaddr and skip-discovery beside the address', () => {
    const d = wire(decide(newPool(), { mac: '52:54:00:00:00:01', type: 1, pxe: 'bios' }));
    expect(d).toMatchObject({ yiaddr: '10.77.0.100', siaddr: S, file: 'undionly.kpxe', sname: S });
    expect(Buffer.from(d.options.get(43)!).toString('hex')).toBe('060108ff');
  });

  it('the admission gate defers a Pi DISCOVER entirely (silence, so it retries) but never its REQUEST', () => {
    const pool = newPool();
    const gated: ProxyPolicy = { ...boot, admit: () => false };
    expect(decide(pool, { mac: PI4_MAC, type: 1, pxe: 'pi4' }, T0, policy, gated)).toMatchObject({ action: 'ignore', reason: 'deferred' });
    expect(pool.leaseOf(PI4_MAC)).toBeUndefined();
    decide(pool, { mac: PI4_MAC, type: 1, pxe: 'pi4' });
    const ack = decide(pool, { mac: PI4_MAC, type: 3, pxe: 'pi4', requested: '10.77.0.100', serverId: S }, T0, policy, gated);
    expect(offersRaspberryPiBoot(wire(ack).options.get(43))).toBe(true);
  });

  it('Pi 3B ROM: the OFFER is already the lease (it never REQUESTs) and is repeated', () => {
    const pool = newPool();
    const d = decide(pool, { mac: PI3_MAC, type: 1, pxe: 'pi3' });
    expect(d).toMatchObject({ action: 'reply', type: 'offer', persist: true, repeatAfterMs: 1200 });
    expect(pool.leaseOf(PI3_MAC)).toMatchObject({ state: 'bound', expiresAt: T0 + 3_600_000 });
  });

  it('echoes option 61 and keys the lease on the MAC, not the client id', () => {
    const pool = newPool();
    const id = Uint8Array.of(1, 2, 0, 0, 0, 12, 1);
    const d = wire(decide(pool, { mac: PLAIN, type: 1, clientId: id }));
    expect(Buffer.from(d.options.get(61)!).equals(Buffer.from(id))).toBe(true);
    // The OS later asks with a different client id: same address.
    const again = decide(pool, { mac: PLAIN, type: 1, clientId: Uint8Array.of(255, 1, 2, 3) });
    expect(again).toMatchObject({ address: '10.77.0.100' });
    expect(again.action === 'reply' && again.probe).toBeFalsy();
  });
});

describe('REQUEST states and NAKs (RFC 2131 4.3.2)', () => {
  const bound = () => {
    const pool = newPool();
    decide(pool, { mac: PLAIN, type: 1 });
    decide(pool, { mac: PLAIN, type: 3, requested: '10.77.0.100', serverId: S });
    return pool;
  };
  const other = '02:00:00:00:0c:99';
  it.each([
    [
      'SELECTING another server: our offer is withdrawn, no reply',
      { mac: other, type: 3, requested: '10.77.0.101', serverId: '10.77.0.1' },
      { action: 'ignore', reason: 'other-server' },
    ],
    [
      'SELECTING us for an address we never offered it',
      { mac: other, type: 3, requested: '10.77.0.102', serverId: S },
      { action: 'reply', type: 'nak', nakReason: 'unknown-client', broadcast: true },
    ],
    [
      "SELECTING us for someone else's address",
      { mac: other, type: 3, requested: '10.77.0.100', serverId: S },
      { action: 'reply', type: 'nak', nakReason: 'taken' },
    ],
    [
      'INIT-REBOOT with its own address',
      { mac: PLAIN, type: 3, requested: '10.77.0.100' },
      { action: 'reply', type: 'ack', address: '10.77.0.100' },
    ],
    [
      'INIT-REBOOT with an address of another network',
      { mac: PLAIN, type: 3, requested: '192.168.1.20' },
      { action: 'reply', type: 'nak', nakReason: 'wrong-address' },
    ],
    [
      "INIT-REBOOT with someone else's address",
      { mac: other, type: 3, requested: '10.77.0.100' },
      { action: 'reply', type: 'nak', nakReason: 'taken' },
    ],
    [
      'INIT-REBOOT with a free address we have no record of (lost lease file): adopted',
      { mac: other, type: 3, requested: '10.77.0.102' },
      { action: 'reply', type: 'ack', address: '10.77.0.102' },
    ],
    [
      'RENEWING (ciaddr, unicast)',
      { mac: PLAIN, type: 3, ciaddr: '10.77.0.100' },
      { action: 'reply', type: 'ack', address: '10.77.0.100', broadcast: false },
    ],
    [
      'REBINDING an address outside the pool',
      { mac: PLAIN, type: 3, ciaddr: '10.77.0.50' },
      { action: 'reply', type: 'nak', nakReason: 'out-of-range' },
    ],
    ['REQUEST with no address at all', { mac: PLAIN, type: 3 }, { action: 'ignore', reason: 'bad-request' }],
    ['a BOOTREPLY (op 2) is never answered', { mac: PLAIN, type: 2 }, { action: 'ignore', reason: 'wrong-message-type' }],
  ] as const)('%s', (_name, shape, expected) => {
    const pool = bound();
    decide(pool, { mac: other, type: 1 }); // other holds an offer of 10.77.0.101
    expect(decide(pool, shape as Shape)).toMatchObject(expected);
    if (expected.action === 'ignore' && 'reason' in expected && expected.reason === 'other-server')
      expect(pool.holderOf('10.77.0.101')).toBeUndefined();
  });

  it('a NAK carries 53=6, 54, 56 and nothing of the address; relayed NAKs set the broadcast flag', () => {
    const pool = bound();
    const direct = wire(decide(pool, { mac: PLAIN, type: 3, requested: '192.168.1.20' }));
    expect([...direct.options.keys()]).toEqual([53, 54, 56]);
    expect(direct).toMatchObject({ yiaddr: '0.0.0.0', ciaddr: '0.0.0.0', siaddr: '0.0.0.0', flags: 0 });
    expect(Buffer.from(direct.options.get(56)!).toString()).toMatch(/not on this network/);
    const relayed = decide(pool, { mac: PLAIN, type: 3, requested: '192.168.1.20', giaddr: '10.77.0.50' });
    expect(relayed).toMatchObject({ broadcast: false });
    expect(wire(relayed)).toMatchObject({ flags: 0x8000, giaddr: '10.77.0.50' });
  });

  it('a DISCOVER relayed from another subnet is ignored (one pool, for our subnet); from ours it is served', () => {
    expect(decide(newPool(), { mac: PLAIN, type: 1, giaddr: '192.168.5.1' })).toMatchObject({ action: 'ignore', reason: 'foreign-subnet' });
    expect(decide(newPool(), { mac: PLAIN, type: 1, giaddr: '10.77.0.50' })).toMatchObject({
      action: 'reply',
      type: 'offer',
      address: '10.77.0.100',
    });
  });

  it('the offered address is never ACKed to a second client', () => {
    const pool = newPool();
    decide(pool, { mac: 'aa:00:00:00:00:01', type: 1 });
    expect(decide(pool, { mac: 'aa:00:00:00:00:02', type: 3, requested: '10.77.0.100' })).toMatchObject({
      type: 'nak',
      nakReason: 'taken',
    });
    expect(decide(pool, { mac: 'aa:00:00:00:00:02', type: 1 })).toMatchObject({ address: '10.77.0.101' });
  });
});

describe('RELEASE, DECLINE, INFORM, exhaustion', () => {
  it('RELEASE by the holder: noted and persisted; by anyone else: ignored', () => {
    const pool = newPool();
    decide(pool, { mac: PLAIN, type: 1 });
    decide(pool, { mac: PLAIN, type: 3, requested: '10.77.0.100', serverId: S });
    expect(decide(pool, { mac: 'aa:00:00:00:00:09', type: 7, ciaddr: '10.77.0.100', serverId: S })).toMatchObject({
      action: 'ignore',
      reason: 'not-our-lease',
    });
    expect(decide(pool, { mac: PLAIN, type: 7, ciaddr: '10.77.0.100', serverId: S })).toMatchObject({
      action: 'noted',
      outcome: 'released',
      persist: true,
    });
    expect(pool.leaseOf(PLAIN)?.state).toBe('released');
  });

  it('DECLINE: the address is quarantined and the next DISCOVER gets another one', () => {
    const pool = newPool();
    decide(pool, { mac: PLAIN, type: 1 });
    decide(pool, { mac: PLAIN, type: 3, requested: '10.77.0.100', serverId: S });
    expect(decide(pool, { mac: PLAIN, type: 4, requested: '10.77.0.100', serverId: '10.77.0.1' })).toMatchObject({
      action: 'ignore',
      reason: 'other-server',
    });
    expect(decide(pool, { mac: PLAIN, type: 4, requested: '10.77.0.100', serverId: S })).toMatchObject({
      action: 'noted',
      outcome: 'declined',
    });
    expect(decide(pool, { mac: PLAIN, type: 1 })).toMatchObject({ address: '10.77.0.101' });
    expect(decide(pool, { mac: 'aa:00:00:00:00:09', type: 3, requested: '10.77.0.100' })).toMatchObject({
      type: 'nak',
      nakReason: 'quarantined',
    });
  });

  it('INFORM: ACK with parameters, ciaddr kept, no yiaddr and no lease time', () => {
    const pool = newPool();
    const d = decide(pool, { mac: PLAIN, type: 8, ciaddr: '10.77.0.77' });
    const m = wire(d);
    expect(m).toMatchObject({ yiaddr: '0.0.0.0', ciaddr: '10.77.0.77' });
    expect(m.options.has(51)).toBe(false);
    expect(ip(m, 1)).toBe('255.255.255.0');
    expect(pool.leases({ offers: true })).toEqual([]);
    expect(decide(pool, { mac: PLAIN, type: 8 })).toMatchObject({ action: 'ignore', reason: 'bad-request' });
  });

  it('exhausted pool: DISCOVERs are ignored and counted, nobody gets an address twice', () => {
    const pool = newPool();
    const given = [1, 2, 3, 4].map((n) => decide(pool, { mac: `aa:00:00:00:00:0${n}`, type: 1 }));
    expect(new Set(given.map((d) => d.action === 'reply' && d.address)).size).toBe(4);
    expect(decide(pool, { mac: 'aa:00:00:00:00:05', type: 1 })).toMatchObject({ action: 'ignore', reason: 'pool-exhausted' });
  });

  it('static address from staticAddressFor (by serial) even outside the range; one off our subnet is ignored', () => {
    const withStatic: FullDhcpPolicy = {
      ...policy,
      staticAddressFor: (mac, serial) => (serial === 'ab5a4158' ? '10.77.0.20' : mac === PLAIN ? '10.9.9.9' : undefined),
    };
    const pool = newPool();
    expect(decide(pool, { mac: PI4_MAC, type: 1, pxe: 'pi4' }, T0, withStatic)).toMatchObject({ address: '10.77.0.20' });
    expect(decide(pool, { mac: PI4_MAC, type: 3, pxe: 'pi4', requested: '10.77.0.20', serverId: S }, T0, withStatic)).toMatchObject({
      type: 'ack',
      address: '10.77.0.20',
    });
    expect(decide(pool, { mac: PLAIN, type: 1 }, T0, withStatic)).toMatchObject({ address: '10.77.0.100' });
  });
});
