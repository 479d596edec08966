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
import { bindSocket, closeQuietly, closeSocket, connectSocket } from './udp.js';
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
  /** A datagram from anyone but the client, on `port` (the transfer's port: replies go from it). */
  stranger(rinfo: RemoteInfo, port: UdpSocket): void;
}

export interface LinkOptions {
  readonly address: string;
  readonly client: TftpClient;
  readonly socketFactory: UdpSocketFactory;
  readonly nativeSockets: boolean;
  readonly log: TftpLogger;
}

const errnos = constants.errno;

/**
 * Opens a transfer's own link: native when enabled and it works, else node:dgram. Throws when no
 * socket can be bound (the transfer fails io-error).
 */
export async function openLink(options: LinkOptions, events: LinkEvents): Promise<TransferLink> {
  const native = options.nativeSockets ? await openNativeLink(options, events) : undefined;
  return native ?? openDgramLink(options, events);
}

/** The listening socket in single-port mode: the server passes what it receives to `deliver`. */
export class SharedLink implements TransferLink {
  constructor(
    private readonly socket: UdpSocket,
    private readonly client: TftpClient,
    private readonly events: LinkEvents,
  ) {}
  deliver(msg: Buffer, rinfo: RemoteInfo): void {
    dispatch(msg, rinfo, this.client, this.events, this.socket);
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

/** Sorts a node:dgram datagram that arrived on `socket` into an ACK, another packet from the client, or a stranger's. */
function dispatch(msg: Buffer, rinfo: RemoteInfo, client: TftpClient, events: LinkEvents, socket: UdpSocket): void {
  if (rinfo.port !== client.port || rinfo.address !== client.address) {
    events.stranger(rinfo, socket);
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
async function openDgramLink(options: LinkOptions, events: LinkEvents): Promise<TransferLink> {
  const { socketFactory, address, client, log } = options;
  const socket = socketFactory('transfer');
  try {
    await bindSocket(socket, 0, address);
  } catch (error) {
    closeQuietly(socket);
    throw error;
  }
  socket.on('error', (error) => {
    // A connected socket reports the client's ICMP port-unreachable (it went away); the
    // retransmission timer ends the transfer, so that is no warning.
    if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') log.debug({ err: error }, 'tftp: client port unreachable');
    else log.warn({ err: error }, 'tftp: transfer socket error');
  });
  socket.on('message', (msg, rinfo) => dispatch(msg, rinfo, client, events, socket));
  if (typeof socket.connect !== 'function') return new DgramLink(socket, false, undefined, client);
  const twin = await bindTwin(options, socket.address().port, events);
  if (!twin) return new DgramLink(socket, false, undefined, client);
  try {
    await connectSocket(socket, client.port, client.address);
    return new DgramLink(socket, true, twin, client);
  } catch (error) {
    // Unconnected, the transfer socket sees strangers itself. The twin must go: two unconnected
    // sockets on one port split the client's datagrams between them.
    log.debug({ err: error }, 'tftp: cannot connect the transfer socket, running unconnected');
    closeQuietly(twin);
    return new DgramLink(socket, false, undefined, client);
  }
}

/** The stranger twin on `port`, or undefined (logged at debug) when it cannot share the port. */
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
  twin.on('message', (_msg, rinfo) => events.stranger(rinfo, twin));
  return twin;
}

/** A datagram the socket buffer had no room for: DATA `block`, or another packet (block −1). */
interface Pending {
  readonly block: number;
  readonly bytes: Uint8Array;
}

/**
 * A window is at most 64 datagrams (options.ts): a backlog past this means the socket is stuck,
 * and the retransmission timer is the remedy, not more memory.
 */
const MAX_BACKLOG = 256;

class NativeLink implements TransferLink {
  private closed: Promise<void> | undefined;
  /**
   * What a full socket buffer refused, in order, until the socket is writable again: as libuv
   * queues for node:dgram. A big window (blksize 8192 × 64 is ~0.5 MB) outgrows the default socket
   * buffer on a real network card, which frees its buffers only once the frames are out.
   */
  private backlog: Pending[] = [];

  constructor(
    private readonly addon: TransferSocketAddon,
    private readonly handle: NativeSocketHandle,
    private readonly twin: UdpSocket,
    private readonly log: TftpLogger,
  ) {}
  sendData(block: number, bytes: Uint8Array): void {
    this.transmit(block, bytes);
  }
  send(packet: Uint8Array): void {
    this.transmit(-1, packet);
  }
  /** The socket can send again: the backlog goes out in order until it is empty or the buffer fills. */
  writable(): void {
    while (this.backlog.length > 0 && !this.closed) {
      const next = this.backlog[0]!;
      const error = this.attempt(next.block, next.bytes);
      if (error === errnos.EAGAIN) {
        this.addon.awaitWritable(this.handle);
        return;
      }
      this.backlog.shift();
      this.failed(error);
    }
  }
  /** Sends now unless earlier datagrams wait; what a full buffer refuses waits for WRITABLE. */
  private transmit(block: number, bytes: Uint8Array): void {
    if (this.backlog.length === 0) {
      const error = this.attempt(block, bytes);
      if (error !== errnos.EAGAIN) {
        this.failed(error);
        return;
      }
      this.addon.awaitWritable(this.handle);
    }
    this.queue({ block, bytes });
  }
  /** One datagram: DATA `block`, or another packet (block −1); 0 or the errno. */
  private attempt(block: number, bytes: Uint8Array): number {
    return block < 0 ? this.addon.send(this.handle, bytes) : this.addon.sendData(this.handle, block, bytes);
  }
  private queue(datagram: Pending): void {
    if (this.backlog.length < MAX_BACKLOG && !this.closed) this.backlog.push(datagram);
  }
  /** A send's errno (0: sent). The client's ICMP unreachable or a kernel short of buffers is left to the retransmission timer. */
  private failed(errno: number): void {
    if (errno === 0 || errno === errnos.ENOBUFS || errno === errnos.ECONNREFUSED || this.closed) return;
    this.log.warn({ errno }, 'tftp: transfer socket send failed');
  }
  close(): Promise<void> {
    if (!this.closed) {
      this.backlog = [];
      this.addon.close(this.handle);
      this.closed = closeSocket(this.twin);
    }
    return this.closed;
  }
}

/**
 * The native socket: bound, its twin bound to the same port, then connected to the client.
 * Undefined when a step fails (logged at debug): the transfer opens on node:dgram instead, so
 * the addon can only ever make a transfer cheaper.
 */
async function openNativeLink(options: LinkOptions, events: LinkEvents): Promise<TransferLink | undefined> {
  const addon = transferSocketAddon();
  if (!addon) return undefined;
  const { address, client, log } = options;
  let link: NativeLink | undefined;
  const onEvent = (kind: number, value: number | Buffer | undefined): void => {
    // Nothing counts before the socket is connected (connect() drops what came before it).
    if (!link) return;
    if (kind === NativeSocketEvent.ACK) events.ack(value as number);
    else if (kind === NativeSocketEvent.PACKET) events.packet(value as Buffer);
    else if (kind === NativeSocketEvent.WRITABLE) link.writable();
    else if (value === errnos.ECONNREFUSED) log.debug({ errno: value }, 'tftp: client port unreachable');
    else log.warn({ errno: value }, 'tftp: transfer socket error');
  };
  let handle: NativeSocketHandle;
  let port: number;
  try {
    [handle, port] = addon.open(address, onEvent);
  } catch (error) {
    log.debug({ err: error }, 'tftp: no native transfer socket, using node:dgram');
    return undefined;
  }
  const twin = await bindTwin(options, port, events);
  if (!twin) {
    addon.close(handle);
    return undefined;
  }
  let connectError: unknown;
  try {
    connectError = addon.connect(handle, client.address, client.port);
  } catch (error) {
    connectError = error; // an address the addon cannot take (it speaks IPv4)
  }
  if (connectError !== 0) {
    log.debug({ err: connectError }, 'tftp: cannot connect the native transfer socket, using node:dgram');
    addon.close(handle);
    closeQuietly(twin);
    return undefined;
  }
  link = new NativeLink(addon, handle, twin, log);
  return link;
}
