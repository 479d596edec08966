/**
 * The proxyDHCP server's sockets and request path (its events and counters: server-events.ts).
 * Over 400 lines on purpose: start, the message handler, sending, the Pi 3B repeat timers and close
 * share one object's sockets, timers and counters, and the full-mode host hooks write to the same
 * state; split apart they would need that state passed around. The decisions stay pure elsewhere
 * (policy.ts, full-policy.ts, lease-pool.ts).
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { clientMac, decodeDhcpMessage, encodeDhcpMessage, isIpv4, type DhcpMessage } from './codec.js';
import type { ClientKind } from './classify.js';
import { DhcpBindError, ProxyConfigError } from './errors.js';
import { sanitizeForLog, silentLogger, type DhcpLogger } from './logger.js';
import { decideProxyReply, replyDestination, validateProxyPolicy, type ProxyDecision, type ProxyPolicy, type ProxyPort } from './policy.js';
import { DEFAULT_RATE_LIMIT, PerClientRateLimiter, type RateLimitOptions } from './rate-limit.js';
import { ForeignDhcpServerError, probeForeignDhcpServers } from './foreign-probe.js';
import { FullModeEngine, type FullModeOptions } from './full-mode.js';
import type { DroppedEvent, IgnoredEvent, OfferSentEvent, PiSeenEvent, ProxyDhcpEvents, ProxyDhcpStats } from './server-events.js';

export interface DhcpClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Pi 3B repeats waiting at once; beyond this, offers are sent once only. */
const MAX_PENDING_REPEATS = 1024;

const systemClock: DhcpClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The part of node:dgram's Socket the server uses; tests inject fakes (lossy, throwing …). */
export interface DhcpUdpSocket {
  bind(port: number, address: string, callback: () => void): unknown;
  send(msg: Uint8Array, port: number, address: string, callback: (error: Error | null) => void): void;
  setBroadcast(flag: boolean): void;
  on(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  address(): { address: string; port: number };
  close(callback?: () => void): unknown;
}

/**
 * The serving sockets need SO_REUSEADDR (the serverIp socket shares its port with the 0.0.0.0
 * one); the start-up probe is created without it.
 */
const defaultSocketFactory = (options: { reuseAddr: boolean }): DhcpUdpSocket =>
  createSocket({ type: 'udp4', reuseAddr: options.reuseAddr });

export interface ProxyDhcpServerOptions {
  /** Our LAN address: replies leave from a socket bound to it (source IP = option 54). */
  serverIp: string;
  /** 67; 0 = any free port (tests). */
  dhcpPort?: number;
  /** 4011; 0 = any free port (tests); null = do not listen. */
  pxePort?: number | null;
  /** Where broadcasts are received; 0.0.0.0 in production. */
  bindAddress?: string;
  /** Port replies on 67 go to (68); loopback tests point it at their client socket. */
  clientPort?: number;
  /** Limited broadcast address for replies to address-less clients; loopback tests use 127.0.0.1. */
  broadcastAddress?: string;
  policy: ProxyPolicy;
  /** Per-MAC flood protection; false turns it off (benchmarks with one MAC). */
  rateLimit?: Partial<RateLimitOptions> | false;
  logger?: DhcpLogger;
  clock?: DhcpClock;
  socketFactory?: (options: { reuseAddr: boolean }) => DhcpUdpSocket;
  /**
   * Full-DHCP mode (`--dhcp-mode full`): port 67 hands out addresses from a lease pool with the boot
   * options in the same reply; 4011 stays as in proxy mode. Unset = proxy mode.
   */
  full?: FullModeOptions;
}

export interface BoundSocket {
  address: string;
  port: number;
  role: 'dhcp' | 'pxe';
}

interface PortSockets {
  /** Receives broadcasts (0.0.0.0). Same object as `send` when bindAddress = serverIp. */
  listen: DhcpUdpSocket;
  /** Bound to serverIp: every reply leaves from here, so the IP source is option 54. */
  send: DhcpUdpSocket;
}

/**
 * proxyDHCP on :67 (DISCOVER → OFFER) and :4011 (REQUEST → ACK) beside the site's own DHCP
 * server. All decisions come from decideProxyReply(); this class only moves bytes, counts and
 * reports (docs/pi-netboot-protocol.md 2.5 for the socket layout).
 */
export class ProxyDhcpServer extends EventEmitter<ProxyDhcpEvents> {
  private policy: ProxyPolicy;
  private readonly options: Required<
    Pick<ProxyDhcpServerOptions, 'serverIp' | 'dhcpPort' | 'bindAddress' | 'clientPort' | 'broadcastAddress'>
  > & {
    pxePort: number | null;
  };
  private readonly logger: DhcpLogger;
  private readonly clock: DhcpClock;
  private readonly limiter: PerClientRateLimiter | undefined;
  private readonly socketFactory: (options: { reuseAddr: boolean }) => DhcpUdpSocket;
  private readonly timers = new Set<unknown>();
  private sockets: Partial<Record<ProxyPort, PortSockets>> = {};
  private started = false;
  private closing: Promise<void> | undefined;
  private readonly counters: ProxyDhcpStats = { received: 0, requests: 0, offers: 0, acks: 0, naks: 0, ignored: {}, dropped: {} };
  private readonly full: FullModeEngine | undefined;
  private readonly fullOptions: FullModeOptions | undefined;

  constructor(options: ProxyDhcpServerOptions) {
    super();
    if (!isIpv4(options.serverIp)) throw new ProxyConfigError('serverIp', `${JSON.stringify(options.serverIp)} is not an IPv4 address`);
    this.options = {
      serverIp: options.serverIp,
      dhcpPort: options.dhcpPort ?? 67,
      pxePort: options.pxePort === undefined ? 4011 : options.pxePort,
      bindAddress: options.bindAddress ?? '0.0.0.0',
      clientPort: options.clientPort ?? 68,
      broadcastAddress: options.broadcastAddress ?? '255.255.255.255',
    };
    this.policy = this.checkedPolicy(options.policy);
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? systemClock;
    this.socketFactory = options.socketFactory ?? defaultSocketFactory;
    this.limiter = options.rateLimit === false ? undefined : new PerClientRateLimiter({ ...DEFAULT_RATE_LIMIT, ...options.rateLimit });
    if (options.full) {
      if (options.full.policy.serverIp !== this.options.serverIp)
        throw new ProxyConfigError(
          'serverIp',
          `full-mode policy says ${options.full.policy.serverIp} but the server sends from ${this.options.serverIp}`,
        );
      this.fullOptions = options.full;
      this.full = new FullModeEngine(options.full, this.fullModeHost());
    }
  }

  /** The full-mode engine's view of this server: its sockets, counters and events. */
  private fullModeHost(): ConstructorParameters<typeof FullModeEngine>[1] {
    return {
      logger: this.logger,
      now: () => this.clock.now(),
      ports: { server: this.options.dhcpPort, client: this.options.clientPort, broadcastAddress: this.options.broadcastAddress },
      send: (bytes, address, port, messageType, event) => {
        const sent: OfferSentEvent | undefined =
          messageType === 'nak'
            ? undefined
            : {
                mac: event.mac,
                kind: (event.kind ?? 'not-pxe') as ClientKind,
                xid: event.xid,
                port: 'dhcp',
                messageType,
                to: `${address}:${port}`,
                repeat: event.repeat,
                ...(event.serial ? { serial: event.serial } : {}),
              };
        this.send('dhcp', bytes, address, port, sent, messageType);
      },
      repeat: (afterMs, resend) => {
        if (this.timers.size >= MAX_PENDING_REPEATS) return;
        const timer = this.clock.setTimeout(() => {
          this.timers.delete(timer);
          resend();
        }, afterMs);
        this.timers.add(timer);
      },
      ignore: (event) => this.ignore({ ...event, kind: event.kind as ClientKind | undefined, port: 'dhcp' } as IgnoredEvent),
      drop: (event) => this.drop({ ...event, port: 'dhcp' }),
      lease: (event) => this.emitSafely('lease', event),
      piSeen: (client, answered, from) => {
        const seen: PiSeenEvent = {
          mac: client.mac,
          xid: client.xid,
          guidKind: client.guidKind,
          evidence: client.piEvidence!,
          answered,
          port: 'dhcp',
          from,
        };
        if (client.model) seen.model = client.model;
        if (client.serial) seen.serial = client.serial;
        this.emitSafely('pi-seen', seen);
      },
    };
  }

  /** Binds every socket; rejects with DhcpBindError (and holds nothing) if one cannot be bound. */
  async start(): Promise<BoundSocket[]> {
    if (this.started) throw new ProxyConfigError('start', 'ProxyDhcpServer.start() was already called');
    this.started = true;
    if (this.full && this.fullOptions) {
      const probe = this.fullOptions.probe;
      if (probe !== false) {
        // Two address servers on one segment hand out addresses twice: look before serving.
        const foreign = await probeForeignDhcpServers({
          serverIp: this.options.serverIp,
          serverPort: this.options.dhcpPort,
          clientPort: this.options.clientPort,
          broadcastAddress: this.options.broadcastAddress,
          socketFactory: this.socketFactory,
          ...(probe?.timeoutMs === undefined ? {} : { timeoutMs: probe.timeoutMs }),
        });
        if (foreign.length > 0) throw new ForeignDhcpServerError(foreign);
      }
      await this.full.load();
    }
    try {
      this.sockets.dhcp = await this.bindPort('dhcp', this.options.dhcpPort);
      if (this.options.pxePort !== null) this.sockets.pxe = await this.bindPort('pxe', this.options.pxePort);
    } catch (error) {
      await this.closeSockets();
      throw error;
    }
    const bound = this.addresses();
    for (const socket of bound) this.logger.info({ ...socket }, `proxyDHCP listening on udp ${socket.address}:${socket.port}`);
    return bound;
  }

  /** Every bound socket (listen and send), for logs and tests. */
  addresses(): BoundSocket[] {
    const out: BoundSocket[] = [];
    for (const role of ['dhcp', 'pxe'] as const) {
      const pair = this.sockets[role];
      if (!pair) continue;
      for (const socket of new Set([pair.listen, pair.send])) {
        const info = socket.address();
        out.push({ address: info.address, port: info.port, role });
      }
    }
    return out;
  }

  /** Swaps the policy (SIGHUP, registry reload); the next packet already uses the new one. */
  updatePolicy(policy: ProxyPolicy): void {
    this.policy = this.checkedPolicy(policy);
  }

  get stats(): ProxyDhcpStats {
    return {
      ...this.counters,
      ignored: { ...this.counters.ignored },
      dropped: { ...this.counters.dropped },
      ...(this.full ? { full: this.full.stats } : {}),
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const timer of this.timers) this.clock.clearTimeout(timer);
      this.timers.clear();
      await this.closeSockets();
      await this.full?.flush();
    })();
    return this.closing;
  }

  private checkedPolicy(policy: ProxyPolicy): ProxyPolicy {
    validateProxyPolicy(policy);
    if (policy.serverIp !== this.options.serverIp) {
      throw new ProxyConfigError('serverIp', `policy says ${policy.serverIp} but the server sends from ${this.options.serverIp}`);
    }
    return policy;
  }

  private async bindPort(role: ProxyPort, port: number): Promise<PortSockets> {
    if (port !== 0) {
      // With SO_REUSEADDR on both sides Linux would let us share the port with a local DHCP
      // server (dnsmasq sets it) and both would answer; a plain bind first tells us it is taken.
      const probe = await bindSocket(this.socketFactory({ reuseAddr: false }), this.options.bindAddress, port);
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    }
    const listen = await bindSocket(this.socketFactory({ reuseAddr: true }), this.options.bindAddress, port);
    if (this.options.bindAddress === this.options.serverIp) {
      this.attach(listen, role);
      return { listen, send: listen };
    }
    let send: DhcpUdpSocket;
    try {
      // Same port as the listener (matters when port 0 picked one): unicast to serverIp lands here.
      send = await bindSocket(this.socketFactory({ reuseAddr: true }), this.options.serverIp, listen.address().port);
    } catch (error) {
      listen.close();
      throw error;
    }
    this.attach(listen, role);
    this.attach(send, role);
    return { listen, send };
  }

  private attach(socket: DhcpUdpSocket, role: ProxyPort): void {
    socket.on('message', (message, rinfo) => this.onMessage(role, message, rinfo));
    socket.on('error', (error) => this.logger.warn({ err: error, role }, 'proxyDHCP socket error'));
  }

  private async closeSockets(): Promise<void> {
    const all = new Set<DhcpUdpSocket>();
    for (const pair of Object.values(this.sockets)) {
      all.add(pair.listen);
      all.add(pair.send);
    }
    this.sockets = {};
    await Promise.all(
      [...all].map(
        (socket) =>
          new Promise<void>((resolve) => {
            try {
              socket.close(() => resolve());
            } catch {
              resolve(); // already closed
            }
          }),
      ),
    );
  }

  private onMessage(port: ProxyPort, bytes: Buffer, rinfo: RemoteInfo): void {
    this.counters.received += 1;
    const from = `${rinfo.address}:${rinfo.port}`;
    let request: DhcpMessage;
    try {
      request = decodeDhcpMessage(bytes);
    } catch (error) {
      this.drop({ reason: 'malformed', peer: from, port, detail: (error as Error).message });
      return;
    }
    this.counters.requests += 1;
    const mac = clientMac(request);
    if (mac && request.op === 1 && this.limiter && !this.limiter.allow(mac, this.clock.now())) {
      this.ignore({ mac, reason: 'rate-limited', xid: request.xid, port });
      return;
    }
    if (this.full && port === 'dhcp') {
      this.full.handle(request, rinfo, this.policy);
      return;
    }

    let decision: ProxyDecision;
    try {
      decision = decideProxyReply(request, { port, policy: this.policy });
    } catch (error) {
      // Only caller hooks (isRegistered, admit, threeSpaceMenu) can throw here.
      this.drop({ reason: 'policy-error', peer: from, port, detail: (error as Error).message });
      return;
    }
    const client = decision.client;
    if (this.logger.isLevelEnabled?.('debug') ?? true)
      this.logger.debug(
        {
          mac: client?.mac ?? mac,
          xid: request.xid,
          arch: client?.arch,
          vendorClass: client?.vendorClass === undefined ? undefined : sanitizeForLog(client.vendorClass),
          kind: client?.kind,
          decision: decision.action === 'reply' ? 'reply' : decision.reason,
          from,
          port,
        },
        'proxyDHCP decision',
      );
    if (client?.kind === 'pi' && client.piEvidence) {
      const seen: PiSeenEvent = {
        mac: client.mac,
        xid: client.xid,
        guidKind: client.guidKind,
        evidence: client.piEvidence,
        answered: decision.action === 'reply',
        port,
        from,
      };
      if (client.model) seen.model = client.model;
      if (client.serial) seen.serial = client.serial;
      this.emitSafely('pi-seen', seen);
    }
    if (decision.action === 'ignore') {
      const event: IgnoredEvent = { reason: decision.reason, xid: request.xid, port };
      if (mac) event.mac = mac;
      if (client) event.kind = client.kind;
      this.ignore(event);
      return;
    }

    let reply: Uint8Array;
    try {
      reply = encodeDhcpMessage(decision.reply, { maxSize: decision.maxSize });
    } catch (error) {
      this.drop({ reason: 'encode-error', peer: from, port, detail: (error as Error).message });
      return;
    }
    const destination = replyDestination(
      request,
      port,
      { address: rinfo.address, port: rinfo.port },
      {
        server: this.options.dhcpPort,
        client: this.options.clientPort,
        broadcastAddress: this.options.broadcastAddress,
      },
    );
    const sent: OfferSentEvent = {
      mac: decision.client.mac,
      kind: decision.client.kind,
      xid: request.xid,
      port,
      messageType: port === 'dhcp' ? 'offer' : 'ack',
      to: `${destination.address}:${destination.port}`,
      repeat: false,
    };
    if (decision.client.serial) sent.serial = decision.client.serial;
    this.send(port, reply, destination.address, destination.port, sent);
    // The repeat is a courtesy for real Pi 3B ROMs; a spoofed flood must not pile up timers.
    if (decision.repeatAfterMs !== undefined && this.timers.size < MAX_PENDING_REPEATS) {
      const timer = this.clock.setTimeout(() => {
        this.timers.delete(timer);
        this.send(port, reply, destination.address, destination.port, { ...sent, repeat: true });
      }, decision.repeatAfterMs);
      this.timers.add(timer);
    }
  }

  private send(
    port: ProxyPort,
    bytes: Uint8Array,
    address: string,
    destinationPort: number,
    event: OfferSentEvent | undefined,
    sent: 'offer' | 'ack' | 'nak' = event?.messageType ?? 'nak',
  ): void {
    const socket = this.sockets[port]?.send;
    if (!socket) return; // closed meanwhile
    const done = (error: Error | null) => {
      if (error) {
        this.drop({ reason: 'send-failed', peer: `${address}:${destinationPort}`, port, detail: error.message });
        return;
      }
      if (sent === 'offer') this.counters.offers += 1;
      else if (sent === 'ack') this.counters.acks += 1;
      else this.counters.naks += 1;
      if (event) this.emitSafely('offer-sent', event);
    };
    try {
      socket.send(bytes, destinationPort, address, done);
    } catch (error) {
      // dgram throws synchronously for some destinations (a forged source port 0, …).
      done(error as Error);
    }
  }

  private ignore(event: IgnoredEvent): void {
    this.counters.ignored[event.reason] = (this.counters.ignored[event.reason] ?? 0) + 1;
    this.emitSafely('ignored', event);
  }

  private drop(event: DroppedEvent): void {
    this.counters.dropped[event.reason] = (this.counters.dropped[event.reason] ?? 0) + 1;
    if (this.logger.isLevelEnabled?.('debug') ?? true) this.logger.debug({ ...event }, 'proxyDHCP packet dropped');
    this.emitSafely('dropped', event);
  }

  /** A throwing listener must not take the receive loop down. */
  private emitSafely<K extends keyof ProxyDhcpEvents>(name: K, ...args: ProxyDhcpEvents[K]): void {
    try {
      (this.emit as (event: K, ...payload: ProxyDhcpEvents[K]) => boolean)(name, ...args);
    } catch (error) {
      this.logger.warn({ err: error, event: name }, 'proxyDHCP event listener threw');
    }
  }
}

function bindSocket(socket: DhcpUdpSocket, address: string, port: number): Promise<DhcpUdpSocket> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      socket.close();
      reject(new DhcpBindError(address, port, error));
    };
    socket.once('error', onError);
    socket.bind(port, address, () => {
      socket.off('error', onError);
      socket.setBroadcast(true);
      resolve(socket);
    });
  });
}
