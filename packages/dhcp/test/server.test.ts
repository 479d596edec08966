import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DhcpBindError,
  PerClientRateLimiter,
  ProxyConfigError,
  ProxyDhcpServer,
  decodeDhcpMessage,
  encodeDhcpMessage,
  offersRaspberryPiBoot,
  type DhcpMessage,
  type IgnoredEvent,
  type OfferSentEvent,
  type PiSeenEvent,
  type ProxyPolicy,
} from '../src/index.js';
import { PI3_ROM_XID } from '../src/index.js';
import { PXE_ARCH0, pi3RomGuid, pi4Guid, request } from './requests.js';

// Loopback only: the server's "broadcast" address is pointed at 127.0.0.1, nothing leaves the host.
const S = '127.0.0.1';

function basePolicy(overrides: Partial<ProxyPolicy> = {}): ProxyPolicy {
  return {
    serverIp: S,
    answer: 'any-pi',
    isRegistered: () => false,
    pxe: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi' },
    pi3RepeatDelayMs: 0,
    ...overrides,
  };
}

interface Harness {
  server: ProxyDhcpServer;
  client: Socket;
  dhcpPort: number;
  pxePort: number;
  replies: Array<{ message: DhcpMessage; from: string }>;
  send(bytes: Uint8Array, port: number): Promise<void>;
  waitForReplies(count: number, timeoutMs?: number): Promise<void>;
}

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) {
    await h.server.close();
    h.client.close();
  }
});

async function harness(
  policy: Partial<ProxyPolicy> = {},
  extra: { rateLimit?: false | { burst: number; perSecond: number } } = {},
): Promise<Harness> {
  const client = createSocket('udp4');
  await new Promise<void>((resolve) => client.bind(0, S, resolve));
  const replies: Harness['replies'] = [];
  const waiters: Array<() => void> = [];
  client.on('message', (bytes, rinfo) => {
    replies.push({ message: decodeDhcpMessage(bytes), from: `${rinfo.address}:${rinfo.port}` });
    for (const w of waiters) w();
  });
  const server = new ProxyDhcpServer({
    serverIp: S,
    bindAddress: S,
    dhcpPort: 0,
    pxePort: 0,
    clientPort: client.address().port,
    broadcastAddress: S,
    policy: basePolicy(policy),
    ...(extra.rateLimit === undefined ? {} : { rateLimit: extra.rateLimit }),
  });
  const bound = await server.start();
  const dhcpPort = bound.find((b) => b.role === 'dhcp')!.port;
  const pxePort = bound.find((b) => b.role === 'pxe')!.port;
  const h: Harness = {
    server,
    client,
    dhcpPort,
    pxePort,
    replies,
    send: (bytes, port) => new Promise((resolve, reject) => client.send(bytes, port, S, (e) => (e ? reject(e) : resolve()))),
    waitForReplies: (count, timeoutMs = 2000) =>
      new Promise((resolve, reject) => {
        if (replies.length >= count) return resolve();
        const timer = setTimeout(() => reject(new Error(`got ${replies.length} replies, wanted ${count}`)), timeoutMs);
        waiters.push(() => {
          if (replies.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        });
      }),
  };
  open.push(h);
  return h;
}

const wire = (m: DhcpMessage) => encodeDhcpMessage(m);
const pi4Discover = request({ mac: 'dc:a6:32:01:36:c2', vendorClass: PXE_ARCH0, arch: 0, guid: pi4Guid });

/** Lets in-flight datagrams arrive before asserting that nothing (more) came. */
const settle = (ms = 100) => new Promise((r) => setTimeout(r, ms));

/** Polls until the condition holds (the server runs in this process but answers asynchronously). */
async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await settle(5);
  }
}

describe('ProxyDhcpServer on loopback', () => {
  it('answers a Pi DISCOVER with the Pi offer from the server address and reports it', async () => {
    const h = await harness();
    const seen: PiSeenEvent[] = [];
    const sent: OfferSentEvent[] = [];
    h.server.on('pi-seen', (e) => seen.push(e));
    h.server.on('offer-sent', (e) => sent.push(e));
    await h.send(wire(pi4Discover), h.dhcpPort);
    await h.waitForReplies(1);
    const [reply] = h.replies;
    expect(reply!.from).toBe(`${S}:${h.dhcpPort}`);
    expect(reply!.message.op).toBe(2);
    expect(reply!.message.xid).toBe(pi4Discover.xid);
    expect(offersRaspberryPiBoot(reply!.message.options.get(43))).toBe(true);
    expect(seen).toEqual([
      expect.objectContaining({ mac: 'dc:a6:32:01:36:c2', model: 'pi4', serial: 'ab5a4158', guidKind: 'fourcc', answered: true }),
    ]);
    await until(() => sent.length === 1);
    expect(sent).toEqual([
      expect.objectContaining({ mac: 'dc:a6:32:01:36:c2', kind: 'pi', messageType: 'offer', port: 'dhcp', repeat: false }),
    ]);
    expect(h.server.stats).toMatchObject({ received: 1, requests: 1, offers: 1, acks: 0 });
  });

  it('answers a 4011 REQUEST with an ACK back to the source port', async () => {
    const h = await harness();
    const req = request({
      mac: '52:54:00:77:00:31',
      type: 3,
      ciaddr: '127.0.0.1',
      vendorClass: 'PXEClient:Arch:00007:UNDI:003000',
      arch: 7,
    });
    await h.send(wire(req), h.pxePort);
    await h.waitForReplies(1);
    expect(h.replies[0]!.from).toBe(`${S}:${h.pxePort}`);
    expect(h.replies[0]!.message.options.get(53)?.[0]).toBe(5);
    expect(h.replies[0]!.message.file).toBe('ipxe.efi');
    await until(() => h.server.stats.acks === 1);
  });

  it('drops and counts malformed datagrams, then keeps answering', async () => {
    const h = await harness();
    const dropped: string[] = [];
    h.server.on('dropped', (e) => dropped.push(e.reason));
    await h.send(Uint8Array.of(1, 2, 3), h.dhcpPort);
    await h.send(new Uint8Array(300), h.dhcpPort); // no cookie
    const truncated = wire(pi4Discover).slice(0, 245);
    truncated[244] = 60;
    await h.send(truncated, h.pxePort);
    await h.send(wire(pi4Discover), h.dhcpPort);
    await h.waitForReplies(1);
    await until(() => dropped.length === 3);
    await settle(20);
    expect(h.replies).toHaveLength(1);
    expect(dropped).toEqual(['malformed', 'malformed', 'malformed']);
    expect(h.server.stats.dropped).toEqual({ malformed: 3 });
  });

  it('reports an unanswered Pi as seen and counts the reason', async () => {
    const h = await harness({ answer: 'registered' });
    const seen: PiSeenEvent[] = [];
    const ignored: IgnoredEvent[] = [];
    h.server.on('pi-seen', (e) => seen.push(e));
    h.server.on('ignored', (e) => ignored.push(e));
    await h.send(wire(pi4Discover), h.dhcpPort);
    await until(() => ignored.length === 1);
    await settle(20);
    expect(h.replies).toHaveLength(0);
    expect(seen).toEqual([expect.objectContaining({ serial: 'ab5a4158', answered: false })]);
    expect(ignored).toEqual([expect.objectContaining({ mac: 'dc:a6:32:01:36:c2', reason: 'pi-not-registered', kind: 'pi' })]);
    expect(h.server.stats.ignored).toEqual({ 'pi-not-registered': 1 });
  });

  it('updatePolicy takes effect on the next packet; a wrong serverIp is refused', async () => {
    const h = await harness({ answer: 'none' });
    await h.send(wire(pi4Discover), h.dhcpPort);
    await until(() => h.server.stats.ignored['pi-answer-none'] === 1);
    expect(h.replies).toHaveLength(0);
    h.server.updatePolicy(basePolicy({ answer: 'registered', isRegistered: ({ serial }) => serial === 'ab5a4158' }));
    await h.send(wire(pi4Discover), h.dhcpPort);
    await h.waitForReplies(1);
    expect(() => h.server.updatePolicy(basePolicy({ serverIp: '10.0.0.1' }))).toThrow(ProxyConfigError);
    expect(() => h.server.updatePolicy(basePolicy({ answer: 'all' as never }))).toThrow(/dhcpAnswer/);
  });

  it('admission gate: deferred Pis are counted, admitted ones answered', async () => {
    let open = false;
    const h = await harness({ admit: () => open });
    await h.send(wire(pi4Discover), h.dhcpPort);
    await until(() => h.server.stats.ignored.deferred === 1);
    open = true;
    await h.send(wire(pi4Discover), h.dhcpPort);
    await h.waitForReplies(1);
  });

  it('repeats the offer once for a Pi 3B ROM after the configured delay', async () => {
    const h = await harness({ pi3RepeatDelayMs: 60 });
    const sent: OfferSentEvent[] = [];
    h.server.on('offer-sent', (e) => sent.push(e));
    const pi3 = request({ mac: 'b8:27:eb:64:24:7d', xid: PI3_ROM_XID, vendorClass: PXE_ARCH0, arch: 0, guid: pi3RomGuid });
    const started = Date.now();
    await h.send(wire(pi3), h.dhcpPort);
    await h.waitForReplies(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
    expect(Buffer.from(encodeDhcpMessage(h.replies[0]!.message))).toEqual(Buffer.from(encodeDhcpMessage(h.replies[1]!.message)));
    expect(sent.map((e) => e.repeat)).toEqual([false, true]);
    await settle(150);
    expect(h.replies).toHaveLength(2);
  });

  it('rate-limits a flood from one MAC, not other clients', async () => {
    const h = await harness({}, { rateLimit: { burst: 3, perSecond: 0.001 } });
    for (let i = 0; i < 10; i++) await h.send(wire(pi4Discover), h.dhcpPort);
    const other = request({ mac: 'dc:a6:32:00:00:99', vendorClass: PXE_ARCH0, arch: 0 });
    await h.send(wire(other), h.dhcpPort);
    await h.waitForReplies(4);
    await until(() => h.server.stats.ignored['rate-limited'] === 7);
    await settle(20);
    expect(h.replies).toHaveLength(4);
    expect(h.server.stats.ignored['rate-limited']).toBe(7);
  });

  it('a throwing listener or hook does not stop the server', async () => {
    const h = await harness({
      isRegistered: ({ mac }) => {
        if (mac.endsWith('66')) throw new Error('registry down');
        return false;
      },
    });
    h.server.on('pi-seen', () => {
      throw new Error('listener bug');
    });
    await h.send(wire(request({ mac: 'dc:a6:32:00:00:66', vendorClass: PXE_ARCH0, arch: 0 })), h.dhcpPort);
    await h.send(wire(pi4Discover), h.dhcpPort);
    await h.waitForReplies(1);
    expect(h.server.stats.dropped['policy-error']).toBe(1);
  });

  it('start() rejects with DhcpBindError when the port is taken; close() is idempotent', async () => {
    const h = await harness();
    const blocker = createSocket('udp4'); // no SO_REUSEADDR: our bind must fail
    await new Promise<void>((resolve) => blocker.bind(0, S, resolve));
    const second = new ProxyDhcpServer({ serverIp: S, bindAddress: S, dhcpPort: blocker.address().port, pxePort: 0, policy: basePolicy() });
    await expect(second.start()).rejects.toBeInstanceOf(DhcpBindError);
    await second.close();
    await second.close();
    blocker.close();
    await h.server.close();
    await h.server.close();
  });
});

describe('ProxyDhcpServer logging', () => {
  it('logs each decision with MAC, xid, arch, sanitised vendor class and the decision', async () => {
    const lines: Array<{ level: string; obj: Record<string, unknown>; msg?: string }> = [];
    const logger = Object.fromEntries(
      ['debug', 'info', 'warn', 'error'].map((level) => [
        level,
        (obj: Record<string, unknown>, msg?: string) => lines.push({ level, obj, msg }),
      ]),
    ) as unknown as import('../src/index.js').DhcpLogger;
    const client = createSocket('udp4');
    await new Promise<void>((resolve) => client.bind(0, S, resolve));
    const server = new ProxyDhcpServer({
      serverIp: S,
      bindAddress: S,
      dhcpPort: 0,
      pxePort: null,
      clientPort: client.address().port,
      broadcastAddress: S,
      policy: basePolicy(),
      logger,
    });
    try {
      const [bound] = await server.start();
      expect(lines).toContainEqual(
        expect.objectContaining({ level: 'info', obj: expect.objectContaining({ port: bound!.port, role: 'dhcp' }) }),
      );
      const evil = request({ mac: '52:54:00:00:00:01', xid: 0xabc, vendorClass: 'PXEClient:Arch:00000\n\x1b[31mfake', arch: 0 });
      client.send(encodeDhcpMessage(evil), bound!.port, S);
      await until(() => lines.some((l) => l.msg === 'proxyDHCP decision'));
      const decision = lines.find((l) => l.msg === 'proxyDHCP decision');
      expect(decision?.obj).toMatchObject({
        mac: '52:54:00:00:00:01',
        xid: 0xabc,
        arch: 0,
        kind: 'bios',
        decision: 'reply',
        vendorClass: 'PXEClient:Arch:00000??[31mfake',
      });
    } finally {
      await server.close();
      client.close();
    }
  });
});

describe('PerClientRateLimiter', () => {
  it('refills over time and forgets the least recently seen client first', () => {
    const limiter = new PerClientRateLimiter({ burst: 2, perSecond: 1, maxClients: 2 });
    expect([limiter.allow('a', 0), limiter.allow('a', 0), limiter.allow('a', 0)]).toEqual([true, true, false]);
    expect(limiter.allow('a', 1000)).toBe(true);
    limiter.allow('b', 1000);
    limiter.allow('c', 1000); // evicts 'a'
    expect(limiter.size).toBe(2);
    expect([limiter.allow('a', 1000), limiter.allow('a', 1000)]).toEqual([true, true]);
  });
});
