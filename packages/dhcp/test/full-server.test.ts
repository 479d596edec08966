import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CoalescingWriter,
  ForeignDhcpServerError,
  LeaseFileError,
  LeasePool,
  LeaseStore,
  ProxyDhcpServer,
  decodeDhcpMessage,
  encodeDhcpMessage,
  ipv4FromBytes,
  messageType,
  parseLeaseFile,
  pingConflictCheck,
  probeForeignDhcpServers,
  type DhcpMessage,
  type FullModeOptions,
  type LeaseEvent,
  type ProxyPolicy,
} from '../src/index.js';

// Loopback only: "broadcast" replies go to 127.0.0.1, nothing leaves the host.
const S = '127.0.0.1';
const boot: ProxyPolicy = { serverIp: S, answer: 'any-pi', isRegistered: () => false, pxe: {}, pi3RepeatDelayMs: 0 };
const poolConfig = { rangeStart: '127.0.0.100', rangeEnd: '127.0.0.103', netmask: '255.255.255.0', serverIp: S, leaseTimeSec: 3600 };

interface Harness {
  server: ProxyDhcpServer;
  port: number;
  replies: DhcpMessage[];
  leases: LeaseEvent[];
  send(bytes: Uint8Array): Promise<void>;
  next(count: number): Promise<DhcpMessage>;
}

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tofu-full-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function boundSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, S, resolve));
  cleanup.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

async function harness(full: Partial<FullModeOptions> = {}): Promise<Harness> {
  const client = await boundSocket();
  const replies: DhcpMessage[] = [];
  const waiters: Array<() => void> = [];
  client.on('message', (bytes) => {
    replies.push(decodeDhcpMessage(bytes));
    for (const w of waiters) w();
  });
  const server = new ProxyDhcpServer({
    serverIp: S,
    bindAddress: S,
    dhcpPort: 0,
    pxePort: null,
    clientPort: client.address().port,
    broadcastAddress: S,
    policy: boot,
    rateLimit: false,
    full: {
      policy: { serverIp: S, netmask: '255.255.255.0', dns: [], leaseTimeSec: 3600 },
      pool: new LeasePool(poolConfig),
      probe: false,
      conflictCheck: false,
      ...full,
    },
  });
  const leases: LeaseEvent[] = [];
  server.on('lease', (e) => leases.push(e));
  const bound = await server.start();
  cleanup.push(() => server.close());
  const port = bound[0]!.port;
  return {
    server,
    port,
    replies,
    leases,
    send: (bytes) => new Promise((resolve, reject) => client.send(bytes, port, S, (e) => (e ? reject(e) : resolve()))),
    next: (count) =>
      new Promise((resolve, reject) => {
        if (replies.length >= count) return resolve(replies[count - 1]!);
        const timer = setTimeout(() => reject(new Error(`got ${replies.length} replies, wanted ${count}`)), 3000);
        waiters.push(() => {
          if (replies.length >= count) {
            clearTimeout(timer);
            resolve(replies[count - 1]!);
          }
        });
      }),
  };
}

function packet(
  mac: string,
  type: number,
  extra: Array<[number, Uint8Array]> = [],
  fields: { ciaddr?: string; xid?: number } = {},
): Uint8Array {
  return encodeDhcpMessage({
    op: 1,
    xid: fields.xid ?? 0x4242,
    chaddr: mac,
    ciaddr: fields.ciaddr ?? '0.0.0.0',
    options: [[53, Uint8Array.of(type)], ...extra],
  });
}
const addr = (text: string) => Uint8Array.from(text.split('.').map(Number));
const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

describe('full-mode server on loopback', () => {
  it('DORA; the lease is on disk before the ACK; a restarted server keeps it and gives others other addresses', async () => {
    const dir = tempDir();
    const store = LeaseStore.inStateDir(dir);
    const h = await harness({ store, pool: new LeasePool(poolConfig) });
    await h.send(packet('02:00:00:00:00:01', 1));
    const offer = await h.next(1);
    expect(messageType(offer)).toBe('offer');
    expect(offer.yiaddr).toBe('127.0.0.100');
    await h.send(
      packet('02:00:00:00:00:01', 3, [
        [50, addr(offer.yiaddr)],
        [54, addr(S)],
      ]),
    );
    const ack = await h.next(2);
    expect(messageType(ack)).toBe('ack');
    // By the time the ACK arrived the lease file held the binding.
    const onDisk = await new LeaseStore(store.path).load();
    expect(onDisk.leases).toEqual([expect.objectContaining({ address: '127.0.0.100', mac: '02:00:00:00:00:01', state: 'bound' })]);
    expect(h.leases.map((e) => e.state)).toEqual(['offered', 'bound']);
    expect(h.server.stats).toMatchObject({ offers: 1, acks: 1, full: { leases: { bound: 1 } } });
    await h.server.close();

    const again = await harness({ store, pool: new LeasePool(poolConfig) });
    await again.send(packet('02:00:00:00:00:02', 1));
    expect((await again.next(1)).yiaddr).toBe('127.0.0.101');
    // INIT-REBOOT of the first client: its address, from the file.
    await again.send(packet('02:00:00:00:00:01', 3, [[50, addr('127.0.0.100')]]));
    const reboot = await again.next(2);
    expect([messageType(reboot), reboot.yiaddr]).toEqual(['ack', '127.0.0.100']);
    // The second client asking for the first one's address is NAKed.
    await again.send(packet('02:00:00:00:00:02', 3, [[50, addr('127.0.0.100')]]));
    const nak = await again.next(3);
    expect(messageType(nak)).toBe('nak');
    expect(again.server.stats.naks).toBe(1);
  });

  it('malformed datagrams, a foreign server id, RELEASE/DECLINE of others, an exhausted pool: dropped or ignored, counted, never an address twice', async () => {
    const h = await harness();
    await h.send(Uint8Array.of(1, 2, 3));
    await h.send(packet('02:00:00:00:00:01', 1).subarray(0, 239));
    const truncated = packet('02:00:00:00:00:01', 1);
    truncated[241] = 200; // option 53 says 200 bytes follow
    await h.send(truncated);
    for (let n = 1; n <= 5; n++) await h.send(packet(`02:00:00:00:00:0${n}`, 1, [], { xid: n }));
    await h.send(
      packet('02:00:00:00:00:01', 3, [
        [50, addr('127.0.0.100')],
        [54, addr('127.0.0.9')],
      ]),
    );
    await h.send(packet('02:00:00:00:00:09', 7, [[54, addr(S)]], { ciaddr: '127.0.0.101' }));
    await h.send(
      packet('02:00:00:00:00:09', 4, [
        [50, addr('127.0.0.101')],
        [54, addr(S)],
      ]),
    );
    await settle(300);
    const offers = h.replies.filter((r) => messageType(r) === 'offer');
    expect(offers).toHaveLength(4);
    expect(new Set(offers.map((o) => o.yiaddr)).size).toBe(4);
    const stats = h.server.stats;
    expect(stats.dropped.malformed).toBe(3);
    expect(stats.ignored).toMatchObject({ 'pool-exhausted': 1, 'other-server': 1, 'not-our-lease': 2 });
    // The offer of the client that chose another server is free again.
    await h.send(packet('02:00:00:00:00:05', 1, [], { xid: 5 }));
    const fifth = await h.next(5);
    expect(fifth.yiaddr).toBe('127.0.0.100');
  });

  it('a Pi is reported as seen (timelines, discovered Pis) with its serial, as in proxy mode', async () => {
    const h = await harness();
    const seen: unknown[] = [];
    h.server.on('pi-seen', (e) => seen.push(e));
    const guid = Uint8Array.of(0, 0x52, 0x50, 0x69, 0x34, 0, 0x11, 0x31, 0xc0, 0, 0, 0, 0, 0xab, 0x5a, 0x41, 0x58);
    await h.send(
      packet('dc:a6:32:01:36:c2', 1, [
        [93, Uint8Array.of(0, 0)],
        [97, guid],
        [60, Uint8Array.from(Buffer.from('PXEClient:Arch:00000:UNDI:002001'))],
      ]),
    );
    const offer = await h.next(1);
    expect(offer.yiaddr).toBe('127.0.0.100');
    expect(seen).toEqual([expect.objectContaining({ mac: 'dc:a6:32:01:36:c2', answered: true, port: 'dhcp' })]);
  });

  it('a ping that answers quarantines the address and the client is offered the next one', async () => {
    const checked: string[] = [];
    const h = await harness({
      conflictCheck: async (a) => {
        checked.push(a);
        return a === '127.0.0.100';
      },
    });
    await h.send(packet('02:00:00:00:00:01', 1));
    const offer = await h.next(1);
    expect(offer.yiaddr).toBe('127.0.0.101');
    expect(checked).toEqual(['127.0.0.100', '127.0.0.101']);
    expect(h.server.stats.full).toMatchObject({ conflicts: 1, leases: { quarantined: 1 } });
    expect(h.leases.map((e) => `${e.state} ${e.address}`)).toEqual(['conflict 127.0.0.100', 'offered 127.0.0.101']);
    // Its retransmitted DISCOVER is not checked again.
    await h.send(packet('02:00:00:00:00:01', 1));
    await h.next(2);
    expect(checked).toHaveLength(2);
  });

  it('conflict checks beyond the limit: the DISCOVER is ignored (counted) and its offer freed; the retry is served', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const h = await harness({
      maxConcurrentChecks: 1,
      conflictCheck: async () => {
        await gate;
        return false;
      },
    });
    await h.send(packet('02:00:00:00:00:01', 1, [], { xid: 1 }));
    await settle(50);
    await h.send(packet('02:00:00:00:00:02', 1, [], { xid: 2 }));
    await h.send(packet('02:00:00:00:00:01', 1, [], { xid: 1 }));
    await settle(100);
    expect(h.server.stats.ignored).toMatchObject({ 'conflict-check-busy': 1, 'probe-pending': 1 });
    release();
    expect((await h.next(1)).yiaddr).toBe('127.0.0.100');
    await h.send(packet('02:00:00:00:00:02', 1, [], { xid: 2 }));
    expect((await h.next(2)).yiaddr).toBe('127.0.0.101');
  });

  it('a lease file that cannot be written withholds the ACK and counts it', async () => {
    const store = LeaseStore.inStateDir(tempDir());
    const full = async () => {
      throw new Error('ENOSPC: no space left on device');
    };
    store.save = full;
    store.append = full;
    const h = await harness({ store });
    await h.send(packet('02:00:00:00:00:01', 1));
    await h.next(1);
    await h.send(
      packet('02:00:00:00:00:01', 3, [
        [50, addr('127.0.0.100')],
        [54, addr(S)],
      ]),
    );
    await settle(300);
    expect(h.replies).toHaveLength(1);
    expect(h.server.stats.dropped['persist-failed']).toBe(1);
    expect(h.server.stats.full?.persistFailures).toBe(1);
  });

  it('a corrupt lease file refuses the start (never guesses who holds what)', async () => {
    const dir = tempDir();
    const store = LeaseStore.inStateDir(dir);
    writeFileSync(store.path, '{"version":1,"leases":[{"address":"x"}]}');
    await expect(harness({ store })).rejects.toThrow(LeaseFileError);
    await expect(harness({ store })).rejects.toThrow(/leases\[0\] is not a lease/);
  });
});

describe('foreign DHCP server probe (loopback)', () => {
  async function fakeServer(offered: string): Promise<{ port: number; socket: Socket }> {
    const socket = await boundSocket();
    socket.on('message', (bytes, rinfo) => {
      const m = decodeDhcpMessage(bytes);
      const reply = encodeDhcpMessage({
        op: 2,
        xid: m.xid,
        chaddr: m.chaddr.subarray(0, 6),
        yiaddr: offered,
        options: [
          [53, Uint8Array.of(2)],
          [54, addr('127.0.0.53')],
        ],
      });
      socket.send(reply, rinfo.port, S);
    });
    return { port: socket.address().port, socket };
  }
  async function freePort(): Promise<number> {
    const s = createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, S, resolve));
    const port = s.address().port;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return port;
  }

  it('reports who answered; nobody answering is an empty list', async () => {
    const fake = await fakeServer('127.0.0.150');
    const clientPort = await freePort();
    const found = await probeForeignDhcpServers({
      serverIp: '127.0.0.2',
      serverPort: fake.port,
      clientPort,
      broadcastAddress: S,
      timeoutMs: 300,
    });
    expect(found).toEqual([{ from: S, serverId: '127.0.0.53', offered: '127.0.0.150', type: 'offer' }]);
    const silent = await freePort();
    expect(
      await probeForeignDhcpServers({
        serverIp: '127.0.0.2',
        serverPort: silent,
        clientPort: await freePort(),
        broadcastAddress: S,
        timeoutMs: 200,
      }),
    ).toEqual([]);
  });

  it('start() in full mode refuses with one line naming the server that answered', async () => {
    const fake = await fakeServer('127.0.0.150');
    const server = new ProxyDhcpServer({
      serverIp: '127.0.0.2',
      bindAddress: '127.0.0.2',
      dhcpPort: fake.port,
      pxePort: null,
      clientPort: await freePort(),
      broadcastAddress: S,
      policy: { ...boot, serverIp: '127.0.0.2' },
      full: {
        policy: { serverIp: '127.0.0.2', netmask: '255.255.255.0', dns: [], leaseTimeSec: 3600 },
        pool: new LeasePool({ ...poolConfig, serverIp: '127.0.0.2' }),
        probe: { timeoutMs: 300 },
      },
    });
    cleanup.push(() => server.close());
    const error = await server.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ForeignDhcpServerError);
    expect((error as Error).message).toBe(
      'another DHCP server answers on this segment: 127.0.0.1 (server id 127.0.0.53) offered 127.0.0.150; refusing --dhcp-mode full (stop it, or use --dhcp-mode proxy beside it)',
    );
    expect((error as Error).message).not.toContain('\n');
  });
});

describe('ping conflict check', () => {
  it.each([
    [0, true, undefined],
    [1, false, undefined],
    [2, false, 'ping exited with 2'],
    [null, false, 'ping did not run or timed out'],
  ] as const)('ping exit %s → in use %s', async (code, inUse, error) => {
    const calls: string[][] = [];
    const errors: string[] = [];
    const check = pingConflictCheck({
      timeoutMs: 300,
      runner: async (file, args) => {
        calls.push([file, ...args]);
        return code;
      },
      onError: (_a, d) => errors.push(d),
    });
    expect(await check('10.77.0.5')).toBe(inUse);
    expect(calls).toEqual([['ping', '-n', '-q', '-c', '1', '-W', '0.3', '10.77.0.5']]);
    expect(errors).toEqual(error ? [error] : []);
  });

  it('really pings: loopback answers, so 127.0.0.1 is "in use"', async () => {
    const errors: string[] = [];
    const check = pingConflictCheck({ timeoutMs: 1000, onError: (_a, d) => errors.push(d) });
    const inUse = await check('127.0.0.1');
    // Unprivileged machines may forbid ICMP sockets: then ping fails (reported), never "free" silently.
    expect(inUse || errors.length === 1).toBe(true);
  });
});

describe('lease journal', () => {
  const lease = (n: number, state: 'bound' | 'released' = 'bound') => ({
    address: `10.77.0.${n}`,
    mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
    state,
    expiresAt: 1_800_000_000_000 + n,
  });

  it('appends replay over the snapshot: last state of an address wins, a free address drops its lease', async () => {
    const store = LeaseStore.inStateDir(tempDir());
    await store.append([
      { address: '10.77.0.1', lease: lease(1) },
      { address: '10.77.0.2', lease: lease(2) },
    ]);
    await store.append([
      { address: '10.77.0.1', lease: lease(1, 'released') },
      { address: '10.77.0.2' },
      { address: '10.77.0.3', quarantine: { address: '10.77.0.3', until: 1_900_000_000_000, reason: 'declined' } },
    ]);
    expect(await new LeaseStore(store.path).load()).toEqual({
      leases: [lease(1, 'released')],
      quarantines: [{ address: '10.77.0.3', until: 1_900_000_000_000, reason: 'declined' }],
    });
  });

  it('a torn last line (crash mid-append) is ignored; a garbled middle line refuses', async () => {
    const store = LeaseStore.inStateDir(tempDir());
    await store.append([{ address: '10.77.0.1', lease: lease(1) }]);
    const good = readFileSync(store.journalPath, 'utf8');
    writeFileSync(store.journalPath, `${good}{"address":"10.77.0.2","lea`);
    expect((await new LeaseStore(store.path).load()).leases).toEqual([lease(1)]);
    writeFileSync(store.journalPath, `${good}{"address":"10.77.0.2","lea\n{"address":"10.77.0.4"}\n`);
    await expect(new LeaseStore(store.path).load()).rejects.toThrow(/line 3 is not JSON/);
  });

  it('compaction: a snapshot of the next generation and an empty journal; an old journal is never replayed over it', async () => {
    const store = LeaseStore.inStateDir(tempDir());
    await store.append([{ address: '10.77.0.1', lease: lease(1) }]);
    const oldJournal = readFileSync(store.journalPath, 'utf8');
    await store.save({ leases: [lease(2)], quarantines: [] });
    expect(readFileSync(store.journalPath, 'utf8')).toMatch(/"generation":1}\n$/);
    // Crash between the snapshot and the new journal: the journal of generation 0 is still there.
    writeFileSync(store.journalPath, oldJournal);
    const reopened = new LeaseStore(store.path);
    expect((await reopened.load()).leases).toEqual([lease(2)]);
    expect(reopened.shouldCompact(1)).toBe(true); // never appends to the stale journal
    await expect(reopened.append([{ address: '10.77.0.3', lease: lease(3) }])).rejects.toThrow(/older snapshot/);
  });

  it('compacts once the journal holds max(1000, 2 x records) entries', async () => {
    const store = LeaseStore.inStateDir(tempDir());
    await store.append(Array.from({ length: 999 }, (_, i) => ({ address: `10.77.${i >> 8}.${i & 0xff}` })));
    expect(store.shouldCompact(10)).toBe(false);
    await store.append([{ address: '10.77.9.9' }]);
    expect(store.shouldCompact(10)).toBe(true);
    expect(store.shouldCompact(600)).toBe(false);
  });

  it('the server journals each ACK batch and compacts on its own; a restart sees every lease', async () => {
    const store = LeaseStore.inStateDir(tempDir());
    const h = await harness({ store, pool: new LeasePool({ ...poolConfig, rangeEnd: '127.0.0.250' }) });
    for (let n = 1; n <= 20; n++) {
      await h.send(packet(`02:00:00:00:01:${n.toString(16).padStart(2, '0')}`, 1, [], { xid: n }));
      const offer = await h.next(2 * n - 1);
      await h.send(
        packet(
          `02:00:00:00:01:${n.toString(16).padStart(2, '0')}`,
          3,
          [
            [50, addr(offer.yiaddr)],
            [54, addr(S)],
          ],
          { xid: n },
        ),
      );
      await h.next(2 * n);
    }
    const loaded = await new LeaseStore(store.path).load();
    expect(loaded.leases.filter((l) => l.state === 'bound')).toHaveLength(20);
    expect(new Set(loaded.leases.map((l) => l.address)).size).toBe(20);
  });
});

describe('lease store and group commit', () => {
  it('round-trips through the file; a write replaces the file atomically', async () => {
    const dir = tempDir();
    const store = LeaseStore.inStateDir(dir);
    expect(await store.load()).toEqual({ leases: [], quarantines: [] });
    const contents = {
      leases: [
        {
          address: '10.77.0.100',
          mac: '02:00:00:00:00:01',
          state: 'bound' as const,
          expiresAt: 1_800_000_000_000,
          hostname: 'a',
          serial: 'ab5a4158',
        },
      ],
      quarantines: [{ address: '10.77.0.101', until: 1_800_000_000_000, reason: 'declined' as const, mac: '02:00:00:00:00:02' }],
    };
    await store.save(contents);
    expect(await store.load()).toEqual(contents);
    expect(readFileSync(store.path, 'utf8')).toContain('"expiresAt": "2027-01-15T08:00:00.000Z"');
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['wrong version', '{"version":2,"leases":[]}', /version 1/],
    [
      'bad MAC',
      '{"version":1,"leases":[{"address":"10.0.0.1","mac":"zz","state":"bound","expiresAt":"2026-01-01T00:00:00Z"}]}',
      /leases\[0\]/,
    ],
    [
      'bad state',
      '{"version":1,"leases":[{"address":"10.0.0.1","mac":"02:00:00:00:00:01","state":"gone","expiresAt":"2026-01-01T00:00:00Z"}]}',
      /leases\[0\]/,
    ],
    [
      'bad quarantine',
      '{"version":1,"leases":[],"quarantines":[{"address":"10.0.0.1","reason":"x","until":"2026-01-01T00:00:00Z"}]}',
      /quarantines\[0\]/,
    ],
  ])('parse error: %s', (_name, text, message) => {
    expect(() => parseLeaseFile(text)).toThrow(message);
  });

  it('flush() waits for a write that started after the call; concurrent calls share one write', async () => {
    let writes = 0;
    const gates: Array<() => void> = [];
    const writer = new CoalescingWriter(
      () =>
        new Promise<void>((resolve) => {
          writes += 1;
          gates.push(resolve);
        }),
    );
    const first = writer.flush();
    const done: number[] = [];
    void first.then(() => done.push(1));
    const second = writer.flush();
    const third = writer.flush();
    expect(second).toBe(third);
    void second.then(() => done.push(2));
    await settle(10);
    expect(writes).toBe(1);
    gates[0]!();
    await settle(10);
    expect(done).toEqual([1]); // second waits for a write started after it was asked
    expect(writes).toBe(2);
    gates[1]!();
    await settle(10);
    expect(done).toEqual([1, 2]);
  });
});

describe('lease addresses are dotted quads on the wire', () => {
  it('ipv4FromBytes of option 54 in a NAK', () => {
    expect(ipv4FromBytes(addr('10.77.0.2'))).toBe('10.77.0.2');
  });
});
