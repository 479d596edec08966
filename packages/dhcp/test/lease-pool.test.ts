import { describe, expect, it } from 'vitest';
import { LeasePool, ProxyConfigError, intToIpv4, ipv4ToInt, isNetmask, type LeasePoolConfig } from '../src/index.js';

const BASE: LeasePoolConfig = {
  rangeStart: '10.77.0.100',
  rangeEnd: '10.77.0.104',
  netmask: '255.255.255.0',
  serverIp: '10.77.0.2',
  leaseTimeSec: 3600,
  offerHoldMs: 30_000,
  declineHoldMs: 600_000,
};
const T0 = 1_800_000_000_000;
const mac = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const pool = (extra: Partial<LeasePoolConfig> = {}) => new LeasePool({ ...BASE, ...extra });

describe('ipv4 helpers', () => {
  it.each([
    ['0.0.0.0', 0],
    ['10.77.0.1', 0x0a4d0001],
    ['255.255.255.255', 0xffffffff],
  ])('%s <-> %d', (text, n) => {
    expect(ipv4ToInt(text)).toBe(n);
    expect(intToIpv4(n)).toBe(text);
  });
  it.each([
    ['255.255.255.0', true],
    ['255.255.0.0', true],
    ['255.255.255.252', true],
    ['255.255.255.254', false],
    ['255.0.255.0', false],
    ['0.0.0.0', false],
    ['nope', false],
  ])('isNetmask(%s) = %s', (text, ok) => expect(isNetmask(text)).toBe(ok));
});

describe('pool configuration errors name the key', () => {
  it.each([
    [{ rangeStart: '10.77.0.200', rangeEnd: '10.77.0.100' }, 'dhcpRange', /end comes before/],
    [{ rangeStart: '10.78.0.100', rangeEnd: '10.78.0.104' }, 'dhcpRange', /not inside the server's subnet/],
    [{ rangeStart: 'ten' }, 'dhcpRange', /dotted-quad/],
    [{ netmask: '255.0.255.0' }, 'dhcpNetmask', /netmask/],
    [{ router: '10.9.9.9' }, 'dhcpRouter', /subnet/],
    [{ leaseTimeSec: 10 }, 'dhcpLeaseTime', /at least 60/],
    [{ netmask: '255.0.0.0', rangeStart: '10.0.0.1', rangeEnd: '10.2.0.0' }, 'dhcpRange', /at most 65536/],
  ] as const)('%j → %s', (extra, key, message) => {
    let error: unknown;
    try {
      pool(extra as Partial<LeasePoolConfig>);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProxyConfigError);
    expect((error as ProxyConfigError).key).toBe(key);
    expect((error as Error).message).toMatch(message);
  });
});

describe('LeasePool.offer: which address', () => {
  it('hands out distinct addresses in order, never the server, router, network or broadcast address', () => {
    const p = new LeasePool({ ...BASE, rangeStart: '10.77.0.0', rangeEnd: '10.77.0.5', router: '10.77.0.1' });
    const got = [1, 2, 3].map((n) => p.offer({ mac: mac(n) }, T0));
    expect(got.map((r) => (typeof r === 'string' ? r : r.address))).toEqual(['10.77.0.3', '10.77.0.4', '10.77.0.5']);
    expect(p.offer({ mac: mac(4) }, T0)).toBe('pool-exhausted');
  });

  it('the same client gets the same address again, and it is not fresh (no second conflict check)', () => {
    const p = pool();
    const first = p.offer({ mac: mac(1) }, T0);
    const again = p.offer({ mac: mac(1) }, T0 + 1000);
    expect(again).toMatchObject({ address: typeof first === 'string' ? '' : first.address, fresh: false });
    expect(first).toMatchObject({ fresh: true });
  });

  it.each([
    ['a free requested address in the range', '10.77.0.103', '10.77.0.103'],
    ['a requested address outside the range → the next free one', '10.77.0.50', '10.77.0.100'],
    ['a requested address off the subnet → the next free one', '192.168.1.5', '10.77.0.100'],
    ['the server address → the next free one', '10.77.0.2', '10.77.0.100'],
  ])('option 50: %s', (_name, requested, expected) => {
    expect(pool().offer({ mac: mac(1), requested }, T0)).toMatchObject({ address: expected });
  });

  it('an address held by another client (offer or lease) is never offered twice', () => {
    const p = pool();
    const a = p.offer({ mac: mac(1), requested: '10.77.0.103' }, T0);
    const b = p.offer({ mac: mac(2), requested: '10.77.0.103' }, T0);
    expect(a).toMatchObject({ address: '10.77.0.103' });
    expect(b).toMatchObject({ address: '10.77.0.100' });
  });

  it('a static address wins over the previous and the requested one, even outside the range', () => {
    const p = pool();
    p.offer({ mac: mac(1) }, T0);
    expect(p.offer({ mac: mac(1), staticAddress: '10.77.0.20', requested: '10.77.0.104' }, T0)).toMatchObject({
      address: '10.77.0.20',
      fresh: true,
    });
    // The dynamic one went back to the pool.
    expect(p.holderOf('10.77.0.100')).toBeUndefined();
  });

  it('static address held by another active lease: the client gets a dynamic one meanwhile', () => {
    const p = pool();
    p.offer({ mac: mac(1), requested: '10.77.0.101' }, T0);
    p.commit({ mac: mac(1) }, '10.77.0.101', T0, { adopt: false });
    expect(p.offer({ mac: mac(2), staticAddress: '10.77.0.101' }, T0)).toMatchObject({ address: '10.77.0.100' });
    // Once that lease has ended the static owner takes it back.
    expect(p.offer({ mac: mac(2), staticAddress: '10.77.0.101' }, T0 + 3_600_001)).toMatchObject({ address: '10.77.0.101' });
    expect(p.leaseOf(mac(1))).toBeUndefined();
  });

  it('reserved (static) addresses are skipped by dynamic allocation and refused to others', () => {
    const p = pool({ isReserved: (a) => a === '10.77.0.100' });
    expect(p.offer({ mac: mac(1) }, T0)).toMatchObject({ address: '10.77.0.101' });
    expect(p.commit({ mac: mac(2) }, '10.77.0.100', T0, { adopt: true })).toBe('taken');
    expect(p.commit({ mac: mac(3), staticAddress: '10.77.0.100' }, '10.77.0.100', T0, { adopt: true })).toMatchObject({ state: 'bound' });
  });

  it('exhausted pool: an expired offer or lease of someone else is reused, longest-expired first', () => {
    const p = pool();
    for (let n = 1; n <= 5; n++) p.offer({ mac: mac(n) }, T0 + n); // offers expire at T0+n+30 s
    expect(p.offer({ mac: mac(9) }, T0 + 10)).toBe('pool-exhausted');
    const reused = p.offer({ mac: mac(9) }, T0 + 31_000 + 10);
    expect(reused).toMatchObject({ address: '10.77.0.100', fresh: true });
    expect(p.leaseOf(mac(1))).toBeUndefined();
  });

  it('never-used addresses go before expired ones of other clients (their owners may come back)', () => {
    const p = pool();
    p.offer({ mac: mac(1) }, T0);
    p.commit({ mac: mac(1) }, '10.77.0.100', T0, { adopt: false });
    p.release(mac(1), '10.77.0.100', T0 + 1);
    expect(p.offer({ mac: mac(2) }, T0 + 2)).toMatchObject({ address: '10.77.0.101' });
    // The releasing client still gets its old address back.
    expect(p.offer({ mac: mac(1) }, T0 + 3)).toMatchObject({ address: '10.77.0.100', fresh: false });
  });
});

describe('LeasePool.commit (REQUEST)', () => {
  const offered = () => {
    const p = pool();
    p.offer({ mac: mac(1) }, T0); // 10.77.0.100
    return p;
  };
  it.each([
    ['the offered address', mac(1), '10.77.0.100', false, { state: 'bound', expiresAt: T0 + 3_600_000 }],
    ['another free address without adopt', mac(1), '10.77.0.101', false, 'unknown-client'],
    ['another free address with adopt (INIT-REBOOT after a lost lease file)', mac(1), '10.77.0.101', true, { state: 'bound' }],
    ["someone else's offered address", mac(2), '10.77.0.100', true, 'taken'],
    ['an address outside the range', mac(1), '10.77.0.50', true, 'out-of-range'],
    ['an address off the subnet', mac(1), '10.1.2.3', true, 'wrong-address'],
    ['the broadcast address', mac(1), '10.77.0.255', true, 'wrong-address'],
    ['the server address', mac(1), '10.77.0.2', true, 'wrong-address'],
  ] as const)('%s', (_name, who, address, adopt, expected) => {
    const result = offered().commit({ mac: who }, address, T0, { adopt });
    if (typeof expected === 'string') expect(result).toBe(expected);
    else expect(result).toMatchObject({ address, mac: who, ...expected });
  });

  it('a client moving to another address frees the first one', () => {
    const p = offered();
    p.commit({ mac: mac(1) }, '10.77.0.103', T0, { adopt: true });
    expect(p.holderOf('10.77.0.100')).toBeUndefined();
    expect(p.leaseOf(mac(1))?.address).toBe('10.77.0.103');
  });

  it('renewal extends the lease; an expired lease of another client can be adopted', () => {
    const p = offered();
    p.commit({ mac: mac(1) }, '10.77.0.100', T0, { adopt: false });
    expect(p.commit({ mac: mac(1) }, '10.77.0.100', T0 + 1_800_000, { adopt: true })).toMatchObject({
      expiresAt: T0 + 1_800_000 + 3_600_000,
    });
    expect(p.commit({ mac: mac(2) }, '10.77.0.100', T0 + 1_800_000 + 3_600_001, { adopt: true })).toMatchObject({ mac: mac(2) });
    expect(p.leaseOf(mac(1))).toBeUndefined();
  });
});

describe('DECLINE, conflicts, RELEASE, withdrawn offers', () => {
  it('a declined address is out of use until the hold ends; the client gets another', () => {
    const p = pool();
    p.offer({ mac: mac(1) }, T0);
    p.commit({ mac: mac(1) }, '10.77.0.100', T0, { adopt: false });
    expect(p.decline(mac(2), '10.77.0.100', T0)).toBe(false); // not its lease
    expect(p.decline(mac(1), '10.77.0.100', T0)).toBe(true);
    expect(p.offer({ mac: mac(1) }, T0 + 1)).toMatchObject({ address: '10.77.0.101', fresh: true });
    expect(p.commit({ mac: mac(3) }, '10.77.0.100', T0 + 2, { adopt: true })).toBe('quarantined');
    expect(p.quarantines(T0 + 2)).toEqual([{ address: '10.77.0.100', until: T0 + 600_000, reason: 'declined', mac: mac(1) }]);
    // After the hold the address is usable again.
    expect(p.offer({ mac: mac(4), requested: '10.77.0.100' }, T0 + 600_001)).toMatchObject({ address: '10.77.0.100' });
  });

  it('markConflict drops the offer and quarantines; the next offer is another address', () => {
    const p = pool();
    p.offer({ mac: mac(1) }, T0);
    p.markConflict('10.77.0.100', T0, mac(1));
    expect(p.offer({ mac: mac(1) }, T0)).toMatchObject({ address: '10.77.0.101' });
  });

  it('markConflict never removes a bound lease of another client', () => {
    const p = pool();
    p.offer({ mac: mac(1) }, T0);
    p.commit({ mac: mac(1) }, '10.77.0.100', T0, { adopt: false });
    p.markConflict('10.77.0.100', T0, mac(2));
    expect(p.leaseOf(mac(1))?.state).toBe('bound');
  });

  it('release only by the holder of that address', () => {
    const p = pool();
    p.offer({ mac: mac(1) }, T0);
    p.commit({ mac: mac(1) }, '10.77.0.100', T0, { adopt: false });
    expect(p.release(mac(2), '10.77.0.100', T0)).toBe(false);
    expect(p.release(mac(1), '10.77.0.101', T0)).toBe(false);
    expect(p.release(mac(1), '10.77.0.100', T0 + 5)).toBe(true);
    expect(p.leaseOf(mac(1))).toMatchObject({ state: 'released', expiresAt: T0 + 5 });
  });

  it('withdrawOffer frees an offer, never a bound lease', () => {
    const p = pool();
    p.offer({ mac: mac(1) }, T0);
    expect(p.withdrawOffer(mac(1))).toBe(true);
    expect(p.holderOf('10.77.0.100')).toBeUndefined();
    p.offer({ mac: mac(2) }, T0);
    p.commit({ mac: mac(2) }, '10.77.0.100', T0, { adopt: false });
    expect(p.withdrawOffer(mac(2))).toBe(false);
  });
});

describe('restore from the lease file', () => {
  it('keeps bound/released records that fit, skips the rest, offers nothing twice afterwards', () => {
    const p = pool();
    const skipped = p.restore(
      [
        { address: '10.77.0.101', mac: mac(1), state: 'bound', expiresAt: T0 + 1000 },
        { address: '10.77.0.102', mac: mac(2), state: 'released', expiresAt: T0 - 1000 },
        { address: '10.77.0.101', mac: mac(3), state: 'bound', expiresAt: T0 + 1000 }, // same address twice
        { address: '10.77.0.103', mac: mac(1), state: 'bound', expiresAt: T0 + 1000 }, // same MAC twice
        { address: '10.99.0.5', mac: mac(4), state: 'bound', expiresAt: T0 + 1000 }, // other subnet
        { address: '10.77.0.50', mac: mac(5), state: 'released', expiresAt: T0 }, // out of range, not bound
      ],
      [{ address: '10.77.0.100', until: T0 + 5000, reason: 'declined' }],
      T0,
    );
    expect(skipped.map((l) => l.mac)).toEqual([mac(3), mac(1), mac(4), mac(5)]);
    expect(p.offer({ mac: mac(9) }, T0)).toMatchObject({ address: '10.77.0.103' });
    expect(p.offer({ mac: mac(2) }, T0)).toMatchObject({ address: '10.77.0.102', fresh: false });
    expect(p.counts(T0)).toEqual({ bound: 1, offered: 2, quarantined: 1, free: 1 });
  });
});

describe('many clients at once', () => {
  it('200 clients DISCOVER then REQUEST interleaved: 200 distinct addresses, none twice', () => {
    const p = new LeasePool({ ...BASE, rangeStart: '10.77.0.10', rangeEnd: '10.77.0.250' });
    const got = new Map<string, string>();
    const macs = Array.from(
      { length: 200 },
      (_, i) => `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
    );
    for (const m of macs) {
      const r = p.offer({ mac: m }, T0);
      if (typeof r === 'string') throw new Error(r);
      got.set(m, r.address);
    }
    for (const m of [...macs].reverse())
      expect(p.commit({ mac: m }, got.get(m)!, T0 + 1, { adopt: false })).toMatchObject({ state: 'bound' });
    expect(new Set(got.values()).size).toBe(200);
    expect(p.counts(T0 + 2)).toMatchObject({ bound: 200, free: 241 - 200 });
  });
});
