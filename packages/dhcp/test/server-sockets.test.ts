import { EventEmitter } from 'node:events';
import type { RemoteInfo } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import {
  DhcpBindError,
  ProxyDhcpServer,
  decodeDhcpMessage,
  encodeDhcpMessage,
  type DhcpUdpSocket,
  type ProxyPolicy,
} from '../src/index.js';
import { PI3_ROM_XID } from '../src/index.js';
import { PXE_ARCH0, pi3RomGuid, pi4Guid, request } from './requests.js';

/** In-memory socket: records binds and sends, throws like node:dgram for port 0. */
class FakeSocket extends EventEmitter implements DhcpUdpSocket {
  bound: { address: string; port: number } | undefined;
  closed = false;
  readonly sent: Array<{ bytes: Uint8Array; port: number; address: string }> = [];
  constructor(private readonly failBind = false) {
    super();
  }
  bind(port: number, address: string, callback: () => void): void {
    if (this.failBind) {
      queueMicrotask(() =>
        this.emit('error', Object.assign(new Error(`bind EADDRNOTAVAIL ${address}:${port}`), { code: 'EADDRNOTAVAIL' })),
      );
      return;
    }
    this.bound = { address, port: port || 40_067 };
    queueMicrotask(callback);
  }
  send(bytes: Uint8Array, port: number, address: string, callback: (error: Error | null) => void): void {
    if (port <= 0 || port > 65535) throw new RangeError(`Port should be > 0 and < 65536. Received ${port}.`);
    this.sent.push({ bytes, port, address });
    queueMicrotask(() => callback(null));
  }
  setBroadcast(): void {}
  address() {
    return this.bound ?? { address: '', port: 0 };
  }
  close(callback?: () => void): void {
    this.closed = true;
    callback?.();
  }
  deliver(bytes: Uint8Array, from: { address: string; port: number }): void {
    this.emit('message', Buffer.from(bytes), { address: from.address, port: from.port, family: 'IPv4', size: bytes.length } as RemoteInfo);
  }
}

const S = '10.0.0.2';
const policy: ProxyPolicy = { serverIp: S, answer: 'any-pi', isRegistered: () => false, pxe: { uefiX64: 'ipxe.efi' }, pi3RepeatDelayMs: 0 };
const flush = () => new Promise((r) => setTimeout(r, 10));

describe('ProxyDhcpServer socket layout (injected sockets)', () => {
  it('listens on 0.0.0.0 and replies from the socket bound to serverIp (docs/pi-netboot-protocol.md 2.5)', async () => {
    const sockets: FakeSocket[] = [];
    const probes: FakeSocket[] = [];
    const server = new ProxyDhcpServer({
      serverIp: S,
      policy,
      socketFactory: ({ reuseAddr }) =>
        reuseAddr ? sockets[sockets.push(new FakeSocket()) - 1]! : probes[probes.push(new FakeSocket()) - 1]!,
    });
    const bound = await server.start();
    // One exclusive probe per port, closed again before the serving sockets bind.
    expect(probes.map((p) => [p.bound, p.closed])).toEqual([
      [{ address: '0.0.0.0', port: 67 }, true],
      [{ address: '0.0.0.0', port: 4011 }, true],
    ]);
    expect(bound).toEqual([
      { address: '0.0.0.0', port: 67, role: 'dhcp' },
      { address: S, port: 67, role: 'dhcp' },
      { address: '0.0.0.0', port: 4011, role: 'pxe' },
      { address: S, port: 4011, role: 'pxe' },
    ]);
    const [dhcpListen, dhcpSend, pxeListen, pxeSend] = sockets;
    dhcpListen!.deliver(encodeDhcpMessage(request({ mac: 'dc:a6:32:01:36:c2', vendorClass: PXE_ARCH0, arch: 0, guid: pi4Guid })), {
      address: '0.0.0.0',
      port: 68,
    });
    await flush();
    expect(dhcpListen!.sent).toEqual([]);
    expect(dhcpSend!.sent.map((s) => [s.address, s.port])).toEqual([['255.255.255.255', 68]]);
    expect(decodeDhcpMessage(dhcpSend!.sent[0]!.bytes).options.get(54)).toEqual(Uint8Array.of(10, 0, 0, 2));

    const uefi = request({
      mac: '52:54:00:77:00:31',
      type: 3,
      ciaddr: '10.0.0.50',
      vendorClass: 'PXEClient:Arch:00007:UNDI:003000',
      arch: 7,
    });
    pxeSend!.deliver(encodeDhcpMessage(uefi), { address: '10.0.0.50', port: 4011 });
    await flush();
    expect(pxeListen!.sent).toEqual([]);
    expect(pxeSend!.sent.map((s) => [s.address, s.port])).toEqual([['10.0.0.50', 4011]]);

    // A forged source port 0 makes dgram throw synchronously: counted, never fatal.
    pxeListen!.deliver(encodeDhcpMessage(uefi), { address: '10.0.0.50', port: 0 });
    await flush();
    expect(server.stats.dropped['send-failed']).toBe(1);
    expect(server.stats).toMatchObject({ offers: 1, acks: 1 });

    await server.close();
    expect(sockets.every((s) => s.closed)).toBe(true);
  });

  it('start() rejects with DhcpBindError when serverIp is not ours and leaves no socket open', async () => {
    const sockets: FakeSocket[] = [];
    const server = new ProxyDhcpServer({
      serverIp: S,
      policy,
      socketFactory: ({ reuseAddr }) => (reuseAddr ? sockets[sockets.push(new FakeSocket(sockets.length === 1)) - 1]! : new FakeSocket()),
    });
    const error = await server.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DhcpBindError);
    expect((error as DhcpBindError).code).toBe('DHCP_BIND_FAILED');
    expect((error as Error).message).toContain(`${S}:67`);
    expect(sockets).toHaveLength(2);
    expect(sockets.every((s) => s.closed)).toBe(true);
  });

  it('refuses to share port 67 with a DHCP server already on this host', async () => {
    const server = new ProxyDhcpServer({ serverIp: S, policy, socketFactory: ({ reuseAddr }) => new FakeSocket(!reuseAddr) });
    await expect(server.start()).rejects.toBeInstanceOf(DhcpBindError);
  });

  it('caps pending Pi 3B repeats so a spoofed flood cannot pile up timers', async () => {
    const scheduled: Array<() => void> = [];
    const clock = { now: () => 0, setTimeout: (fn: () => void) => scheduled.push(fn), clearTimeout: () => undefined };
    const sockets: FakeSocket[] = [];
    const server = new ProxyDhcpServer({
      serverIp: S,
      pxePort: null,
      policy: { ...policy, pi3RepeatDelayMs: 1000 },
      clock,
      socketFactory: ({ reuseAddr }) => (reuseAddr ? sockets[sockets.push(new FakeSocket()) - 1]! : new FakeSocket()),
    });
    await server.start();
    for (let i = 0; i < 1100; i++) {
      const mac = `b8:27:eb:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
      sockets[0]!.deliver(encodeDhcpMessage(request({ mac, xid: PI3_ROM_XID, vendorClass: PXE_ARCH0, arch: 0, guid: pi3RomGuid })), {
        address: '0.0.0.0',
        port: 68,
      });
    }
    await flush();
    expect(server.stats.offers).toBe(1100);
    expect(scheduled).toHaveLength(1024);
    for (const fire of scheduled.slice(0, 10)) fire(); // repeats go out from the same socket
    await flush();
    expect(server.stats.offers).toBe(1110);
    expect(sockets[1]!.sent).toHaveLength(1110);
    await server.close();
  });
});
