/**
 * How one transfer's datagrams leave and arrive. Three kinds of link, one interface:
 * - native: the addon's socket (native-socket.ts; issue 14), no node:dgram work per datagram;
 * - dgram: a node:dgram socket of its own, connected to the client where it can be;
 * - shared: the server's listening socket in single-port mode (the server routes datagrams here).
 * A connected socket (native or dgram) has a twin bound to the same address:port: Linux hands the
 * twin every datagram that does not match the connected 4-tuple, so strangers still get ERROR 5.
 * The transfer (transfer-io.ts) sees only ACKs, the client's other packets and strangers.
 */
import type { RemoteInfo } from 'node:dgram';
import { constants } from 'node:os';
import type { TftpClient } from './events.js';
import type { TftpLogger } from './logger.js';
import { NativeSocketEvent, transferSocketAddon } from './native-socket.js';
import type { NativeSocketHandle, TransferSocketAddon } from './native-socket.js';
import { peekAckBlock, writeDataHeader } from './packet.js';
import { bindSocket, connectSocket } from './udp.js';
import type { UdpSocket, UdpSocketFactory } from './udp.js';

export interface TransferLink {
  /** DATA `block` (the 16-bit wire number) carrying `bytes`. */
  sendData(block: number, bytes: Uint8Array): void;
  /** Any other packet: OACK, ERROR. */
  send(packet: Uint8Array): void;
  /** Releases what the link owns; idempotent, resolves once the sockets are closed. */
  close(): Promise<void>;
}

/** What a link reports to its transfer. */
export interface LinkEvents {
  ack(block: number): void;
  /** A datagram from the client that is not an ACK (ERROR, garbage). */
  packet(msg: Buffer): void;
  /** A datagram from anyone but the client; `reply` answers it from the transfer's port. */
  stranger(rinfo: RemoteInfo, reply: (packet: Uint8Array) => void): void;
}

export interface LinkOptions {
  readonly address: string;
  readonly client: TftpClient;
  readonly socketFactory: UdpSocketFactory;
  readonly nativeSockets: boolean;
  readonly log: TftpLogger;
  /** True once the transfer has ended: a link still opening closes itself and opens nothing more. */
  readonly ended: () => boolean;
}

const errnos = constants.errno;

/**
 * Opens a transfer's own link: native when enabled and it works, else node:dgram. Undefined when
 * the transfer ended meanwhile; throws when no socket can be bound (the transfer fails io-error).
 */
export async function openLink(options: LinkOptions, events: LinkEvents): Promise<TransferLink | undefined> {
  if (options.nativeSockets) {
    const native = await openNativeLink(options, events);
    if (native !== 'unavailable') return native;
  }
  return openDgramLink(options, events);
}

/** The listening socket in single-port mode: the server passes what it receives to `deliver`. */
export class SharedLink implements TransferLink {
  constructor(
    private readonly socket: UdpSocket,
    private readonly client: TftpClient,
    private readonly events: LinkEvents,
  ) {}
  deliver(msg: Buffer, rinfo: RemoteInfo): void {
    dispatch(msg, rinfo, this.client, this.events, (packet) => this.socket.send(packet, rinfo.port, rinfo.address));
  }
  sendData(block: number, bytes: Uint8Array): void {
    this.socket.send([dataHeader(block), bytes], this.client.port, this.client.address);
  }
  send(packet: Uint8Array): void {
    this.socket.send(packet, this.client.port, this.client.address);
  }
  close(): Promise<void> {
    return Promise.resolve(); // the server's socket
  }
}

/** DATA headers for every 16-bit block number, built on first use and shared by all transfers. */
const HEADER_BYTES = Buffer.alloc(65536 * 4);
const HEADERS: (Buffer | undefined)[] = new Array<Buffer | undefined>(65536);
function dataHeader(block: number): Buffer {
  let header = HEADERS[block];
  if (!header) {
    header = HEADER_BYTES.subarray(block * 4, block * 4 + 4);
    writeDataHeader(header, block);
    HEADERS[block] = header;
  }
  return header;
}

/** Sorts a node:dgram datagram into an ACK, another packet from the client, or a stranger's. */
function dispatch(msg: Buffer, rinfo: RemoteInfo, client: TftpClient, events: LinkEvents, reply: (packet: Uint8Array) => void): void {
  if (rinfo.port !== client.port || rinfo.address !== client.address) {
    events.stranger(rinfo, reply);
    return;
  }
  const block = peekAckBlock(msg);
  if (block >= 0) events.ack(block);
  else events.packet(msg);
}

class DgramLink implements TransferLink {
  private closed: Promise<void> | undefined;
  constructor(
    private readonly socket: UdpSocket,
    /** Connected to the client: sends carry no address, the kernel filters receives. */
    private readonly connected: boolean,
    private readonly twin: UdpSocket | undefined,
    private readonly client: TftpClient,
  ) {}
  sendData(block: number, bytes: Uint8Array): void {
    // Gather-send a shared, immutable header and a view of the cached bytes: no copy and no pool
    // allocation per block. No send callback either (it costs a nextTick per datagram); send
    // errors reach the socket's 'error' listener and the retransmission timer covers loss.
    this.sendAny([dataHeader(block), bytes]);
  }
  send(packet: Uint8Array): void {
    this.sendAny(packet);
  }
  private sendAny(packet: Uint8Array | readonly Uint8Array[]): void {
    if (this.closed) return;
    if (this.connected) this.socket.send(packet);
    else this.socket.send(packet, this.client.port, this.client.address);
  }
  close(): Promise<void> {
    this.closed ??= Promise.all([closeSocket(this.socket), this.twin ? closeSocket(this.twin) : undefined]).then(() => undefined);
    return this.closed;
  }
}

/**
 * A node:dgram socket of the transfer's own, connected to the client after its twin is bound
 * (measured: ~20 % less CPU per block than sending with an address). When the twin cannot share
 * the port (a socket factory without SO_REUSEADDR) or connect fails, it runs unconnected.
 */
async function openDgramLink(options: LinkOptions, events: LinkEvents): Promise<TransferLink | undefined> {
  const { socketFactory, address, client, log } = options;
  const socket = socketFactory('transfer');
  try {
    await bindSocket(socket, 0, address);
  } catch (error) {
    closeQuietly(socket);
    throw error;
  }
  if (options.ended()) return void closeQuietly(socket);
  socket.on('error', (error) => {
    // A connected socket reports the client's ICMP port-unreachable (it went away); the
    // retransmission timer ends the transfer, so that is no warning.
    if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') log.debug({ err: error }, 'tftp: client port unreachable');
    else log.warn({ err: error }, 'tftp: transfer socket error');
  });
  socket.on('message', (msg, rinfo) => dispatch(msg, rinfo, client, events, (packet) => socket.send(packet, rinfo.port, rinfo.address)));
  if (typeof socket.connect !== 'function') return new DgramLink(socket, false, undefined, client);
  const twin = await bindTwin(options, socket.address().port, events);
  if (options.ended()) {
    closeQuietly(socket);
    if (twin) closeQuietly(twin);
    return undefined;
  }
  if (!twin) return new DgramLink(socket, false, undefined, client);
  try {
    await connectSocket(socket, client.port, client.address);
    return new DgramLink(socket, true, twin, client);
  } catch (error) {
    // Unconnected, the transfer socket sees strangers itself; the twin only costs a descriptor.
    log.debug({ err: error }, 'tftp: cannot connect the transfer socket, running unconnected');
    return new DgramLink(socket, false, twin, client);
  }
}

/** The stranger twin on `port`, or undefined (logged) when it cannot share the port. */
async function bindTwin(options: LinkOptions, port: number, events: LinkEvents): Promise<UdpSocket | undefined> {
  const twin = options.socketFactory('strangers');
  try {
    await bindSocket(twin, port, options.address);
  } catch (error) {
    options.log.debug({ err: error }, 'tftp: no stranger socket on the transfer port');
    closeQuietly(twin);
    return undefined;
  }
  twin.on('error', (error) => options.log.warn({ err: error }, 'tftp: stranger socket error'));
  twin.on('message', (_msg, rinfo) => events.stranger(rinfo, (packet) => twin.send(packet, rinfo.port, rinfo.address)));
  return twin;
}

class NativeLink implements TransferLink {
  private closed: Promise<void> | undefined;
  constructor(
    private readonly addon: TransferSocketAddon,
    private readonly handle: NativeSocketHandle,
    private readonly twin: UdpSocket,
    private readonly log: TftpLogger,
  ) {}
  sendData(block: number, bytes: Uint8Array): void {
    const error = this.addon.sendData(this.handle, block, bytes);
    if (error !== 0) this.sendFailed(error);
  }
  send(packet: Uint8Array): void {
    const error = this.addon.send(this.handle, packet);
    if (error !== 0) this.sendFailed(error);
  }
  /** A full socket buffer or the client's ICMP unreachable is left to the retransmission timer. */
  private sendFailed(errno: number): void {
    if (errno === errnos.EAGAIN || errno === errnos.ENOBUFS || errno === errnos.ECONNREFUSED || this.closed) return;
    this.log.warn({ errno }, 'tftp: transfer socket send failed');
  }
  close(): Promise<void> {
    if (!this.closed) {
      this.addon.close(this.handle);
      this.closed = closeSocket(this.twin);
    }
    return this.closed;
  }
}

/**
 * The native socket: bound, its twin bound to the same port, then connected to the client.
 * 'unavailable' when a step fails (logged at debug): the transfer opens on node:dgram instead,
 * so the addon can only ever make a transfer cheaper.
 */
async function openNativeLink(options: LinkOptions, events: LinkEvents): Promise<TransferLink | undefined | 'unavailable'> {
  const addon = transferSocketAddon();
  if (!addon) return 'unavailable';
  const { address, client, log } = options;
  let link: NativeLink | undefined;
  const onEvent = (kind: number, value: number | Buffer): void => {
    // Nothing counts before the socket is connected (from then on the kernel filters strangers).
    if (!link) return;
    if (kind === NativeSocketEvent.ACK) events.ack(value as number);
    else if (kind === NativeSocketEvent.PACKET) events.packet(value as Buffer);
    else if (value === errnos.ECONNREFUSED) log.debug({ errno: value }, 'tftp: client port unreachable');
    else log.warn({ errno: value }, 'tftp: transfer socket error');
  };
  let handle: NativeSocketHandle;
  let port: number;
  try {
    [handle, port] = addon.open(address, onEvent);
  } catch (error) {
    log.debug({ err: error }, 'tftp: no native transfer socket, using node:dgram');
    return 'unavailable';
  }
  const twin = await bindTwin(options, port, events);
  if (!twin || options.ended()) {
    addon.close(handle);
    if (twin) closeQuietly(twin);
    return options.ended() ? undefined : 'unavailable';
  }
  const connectError = addon.connect(handle, client.address, client.port);
  if (connectError !== 0) {
    log.debug({ errno: connectError }, 'tftp: cannot connect the native transfer socket, using node:dgram');
    addon.close(handle);
    closeQuietly(twin);
    return 'unavailable';
  }
  link = new NativeLink(addon, handle, twin, log);
  return link;
}

function closeSocket(socket: UdpSocket): Promise<void> {
  return new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed or never bound
    }
  });
}

function closeQuietly(socket: UdpSocket): void {
  try {
    socket.close();
  } catch {
    // already closed or never bound
  }
}
