/**
 * The boot server daemon (`boot-server start`): the BootServer class and startBootServer().
 *
 * Over 400 lines on purpose: this is the one place where the servers meet. Starting, reloading
 * and closing must see every part (a failed start closes what already listens, a reload compares
 * every key), so the wiring stays in one class; what each part does lives in its own module
 * (admission*.ts, boot-tracker.ts, api/, mqtt/, web/, and the dhcp, tftp and fleet packages).
 */
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { ProxyDhcpServer, type ProxyPolicy } from '@iot-tofu/dhcp';
import { IotTofuError } from '@iot-tofu/errors';
import { Fleet, type CommandRunner } from '@iot-tofu/fleet';
import { defaultTransferThreads, FileSource, nativeSocketStatus, TftpServer } from '@iot-tofu/tftp';
import { AdmissionControl } from './admission-control.js';
import { AdmissionGate, admissionMode } from './admission.js';
import { buildApi, fleetPort, publicRoutes } from './api.js';
import { proxyPolicy } from './proxy-policy.js';
import { initramfsFromBootFolders } from './boot-plan.js';
import { BootTracker, type BootOutcome } from './boot-tracker.js';
import { DEFAULT_CONFIG, type BootServerConfig } from './config.js';
import { EventBus, type BootEventName, type BootEvents } from './events.js';
import { ensureApiToken } from './files.js';
import { fullDhcpOptions } from './full-dhcp.js';
import { createMetrics, type BootMetrics } from './metrics.js';
import { defaultRegion, MqttBootPublisher, registerMqttMetrics } from './mqtt/index.js';
import type { MqttHealth } from './status.js';
import { webRoutes } from './web/index.js';

export interface BootServerDeps {
  /** Default: silent. */
  logger?: Logger;
  /** Runs exportfs and friends for the fleet (tests may inject). */
  runner?: CommandRunner;
  /** Wall clock in ms (timelines, boot durations). */
  now?: () => number;
  version?: string;
  /** Whether fleet verbs may run (default: euid 0); tests of our own logic inject it, as for Fleet. */
  isRoot?: () => boolean;
}

/** One socket the daemon listens on; the bin logs one line per entry. */
export interface ListeningSocket {
  service: 'dhcp' | 'pxe' | 'tftp' | 'api';
  protocol: 'udp' | 'tcp';
  address: string;
  port: number;
}

export class StartupError extends IotTofuError {
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('STARTUP_FAILED', `${key}: ${message}`, options);
  }
}

/** Ignored DHCP traffic that is not a network-booting client at all: counted, never put on the bus. */
const QUIET_IGNORE_REASONS: ReadonlySet<string> = new Set(['not-pxe', 'wrong-message-type']);

const NFS_HEALTH_CACHE_MS = 5000;

/** Config keys a SIGHUP cannot change on a running daemon (sockets and folders are fixed at start). */
export const RESTART_KEYS: readonly (keyof BootServerConfig)[] = [
  'serverIp',
  'tftpRoot',
  'nfsRoot',
  'stateDir',
  'dhcpPort',
  'pxePort',
  'tftpPort',
  'dhcp',
  'tftp',
  'tftpThreads',
  'apiListen',
  'apiPort',
  'exportsFile',
  'exportsClients',
  'dhcpMode',
  'dhcpRange',
  'dhcpNetmask',
  'dhcpRouter',
  'dhcpDns',
  'dhcpLeaseTime',
  'dhcpConflictCheck',
  'mqttUrl',
  'region',
];

/** Keys that differ between two configs and need a restart to take effect. */
export function keysNeedingRestart(before: BootServerConfig, after: BootServerConfig): string[] {
  return RESTART_KEYS.filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]));
}

/**
 * The daemon: fleet registry, proxyDHCP, TFTP, HTTP API, MQTT and metrics wired to one event bus
 * and one logger. `start()` resolves with every listening socket; `close()` is idempotent.
 */
export class BootServer {
  readonly bus: EventBus;
  private config: BootServerConfig;
  private readonly logger: Logger;
  private readonly deps: BootServerDeps;
  private readonly now: () => number;
  private fleet: Fleet | undefined;
  private tftp: TftpServer | undefined;
  private dhcp: ProxyDhcpServer | undefined;
  private api: FastifyInstance | undefined;
  private mqtt: MqttBootPublisher | undefined;
  private metrics: BootMetrics | undefined;
  private readonly tracker: BootTracker;
  private readonly gate: AdmissionGate;
  /** The gate's slots: who holds one, who only got an offer, who left an offer unused. */
  private readonly admission: AdmissionControl;
  private tickTimer: NodeJS.Timeout | undefined;
  private neighbourTimer: NodeJS.Timeout | undefined;
  private nfsHealthCache: { at: number; value: Promise<object> } | undefined;
  private readonly cleanups: Array<() => void> = [];
  /** MACs learned from DHCP, so TFTP facts (which only know the serial and IP) reach the right Pi. */
  private readonly macBySerial = new Map<string, string>();
  private readonly lastIgnored = new Map<string, string>();
  private addresses: ListeningSocket[] = [];
  private readonly libraryLoggers: Logger[] = [];
  private closing: Promise<void> | undefined;
  private apiTokenPath: string | undefined;

  constructor(config: BootServerConfig, deps: BootServerDeps = {}) {
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger ?? pino({ level: 'silent' });
    this.now = deps.now ?? Date.now;
    this.bus = new EventBus((error, name) => this.logger.error({ err: error, event: name }, 'event listener failed'));
    this.tracker = new BootTracker({
      tftpAfterOfferTimeoutMs: config.tftpAfterOfferTimeout * 1000,
      initramfsOf: initramfsFromBootFolders(config.tftpRoot),
    });
    this.gate = new AdmissionGate(admissionMode(config.admissionBudget));
    this.admission = new AdmissionControl(this.gate);
  }

  /** The boot-storm gate right now: mode, capacity, Pis booting, Pis waiting (metrics, /healthz). */
  admissionStatus(): { mode: string; capacity: number; active: number; waiting: number } {
    const { mode, capacity, waiting } = this.gate.snapshot(this.now());
    // Boots as the timeline sees them (offer to kernel); the gate's own slots drop silent offers sooner.
    return { mode, capacity, active: this.tracker.activeBoots(), waiting };
  }

  get currentConfig(): BootServerConfig {
    return this.config;
  }

  get tokenPath(): string | undefined {
    return this.apiTokenPath;
  }

  async start(): Promise<ListeningSocket[]> {
    try {
      return await this.startAll();
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  private async startAll(): Promise<ListeningSocket[]> {
    const { config, logger } = this;
    await prepareFolder('tftpRoot', config.tftpRoot, config.tftpRoot === DEFAULT_CONFIG.tftpRoot);
    await prepareFolder('stateDir', config.stateDir, true);

    const fleet = await Fleet.open({
      tftpRoot: config.tftpRoot,
      nfsRoot: config.nfsRoot,
      stateDir: config.stateDir,
      exportsFile: config.exportsFile,
      ...(config.exportsClients ? { exportsClients: config.exportsClients } : {}),
      ...(config.dockerDisk !== undefined ? { dockerDiskDefault: config.dockerDisk } : {}),
      serverIp: config.serverIp,
      logger: logger.child({ subsystem: 'fleet' }),
      ...(this.deps.runner ? { runner: this.deps.runner } : {}),
      ...(this.deps.isRoot ? { isRoot: this.deps.isRoot } : {}),
    }).catch((error: unknown) => {
      throw new StartupError('stateDir', `cannot open the registry in ${config.stateDir}: ${(error as Error).message}`, { cause: error });
    });
    this.fleet = fleet;
    this.cleanups.push(
      fleet.watch((change) => {
        logger.info({ ...change }, 'registry changed on disk; reloaded');
        this.bus.emit('registry-changed', { at: this.now() });
      }),
    );

    this.metrics = createMetrics(this.bus, () => ({
      ...(this.tftp ? { tftp: this.tftp.stats } : {}),
      ...(this.dhcp ? { dhcp: this.dhcp.stats } : {}),
      admission: this.admissionStatus(),
    }));
    this.wireFleetFacts(fleet);
    this.wireLogs();
    if (config.mqttUrl) this.startMqtt(fleet, config.mqttUrl);

    if (config.tftp) await this.startTftp(fleet);
    if (config.dhcp) await this.startDhcp(fleet);
    if (config.apiPort !== 0) await this.startApi(fleet);

    this.tickTimer = setInterval(() => this.publish(this.tracker.tick(this.now())), 1000);
    this.tickTimer.unref();
    this.scheduleNeighbourScans();
    return this.addresses;
  }

  private async startTftp(fleet: Fleet): Promise<void> {
    const { config } = this;
    const log = this.libraryLogger('tftp');
    const source = new FileSource({ root: config.tftpRoot, isRegistered: (serial) => fleet.isRegistered({ serial }), logger: log });
    const threads = config.tftpThreads === 'auto' ? defaultTransferThreads() : config.tftpThreads;
    const tftp = new TftpServer({ address: config.serverIp, port: config.tftpPort, source, logger: log, threads });
    // Says which transfer path runs (the daemon takes the library's default: the addon where it loads);
    // a platform without the prebuilt addon serves on node:dgram at a higher CPU cost per block.
    const sockets = nativeSocketStatus();
    if (sockets.loaded) log.info({ addon: sockets.path }, 'tftp: transfer sockets on the native addon');
    else log.info({ reason: sockets.reason }, 'tftp: transfer sockets on node:dgram');
    // Every TFTP event goes out with the serial it belongs to (one rule: BootTracker.serialOf), so the
    // fleet, the page and MQTT need not work it out again.
    const serialOf = (e: { serial?: string; client: { address: string }; file: string }) =>
      opt('serial', this.tracker.serialOf({ ...opt('serial', e.serial), clientIp: e.client.address, file: e.file }));
    tftp.on('transfer-started', (e) => {
      this.bus.emit('transfer-started', { ...serialOf(e), clientIp: e.client.address, file: e.file, at: this.now() });
    });
    tftp.on('file-served', (e) => {
      this.bus.emit('file-served', {
        ...serialOf(e),
        clientIp: e.client.address,
        file: e.file,
        bytes: e.bytes,
        ms: round(e.durationMs),
        retries: e.retries,
        at: this.now(),
      });
    });
    tftp.on('transfer-aborted', (e) => {
      this.bus.emit('transfer-failed', {
        ...serialOf(e),
        clientIp: e.client.address,
        file: e.file,
        reason: `client ended the transfer: ${e.message || `error ${e.code}`}`,
        kind: 'aborted',
        retries: 0,
        at: this.now(),
      });
    });
    tftp.on('transfer-failed', (e) => {
      const kind = e.reason === 'not-found' ? 'missing' : e.reason === 'timeout' ? 'timeout' : 'error';
      const reason = kind === 'missing' ? `${e.file} missing` : `${e.reason}: ${e.message}`;
      this.bus.emit('transfer-failed', {
        ...serialOf(e),
        clientIp: e.client.address,
        file: e.file,
        reason,
        kind,
        retries: e.retries,
        at: this.now(),
      });
    });
    const bound = await tftp.start().catch((error: unknown) => {
      throw new StartupError('tftpPort', (error as Error).message, { cause: error });
    });
    this.tftp = tftp;
    this.addresses.push({ service: 'tftp', protocol: 'udp', address: bound.address, port: bound.port });
  }

  /**
   * Pis the neighbour table knows but DHCP does not (their DHCP went to the router) still get their
   * IP learned: once now, then every neighbourScanInterval seconds (0 = never; SIGHUP re-arms).
   */
  private scheduleNeighbourScans(): void {
    if (this.neighbourTimer) clearInterval(this.neighbourTimer);
    this.neighbourTimer = undefined;
    const fleet = this.fleet;
    const seconds = this.config.neighbourScanInterval;
    if (!fleet || seconds <= 0) return;
    const scan = () => {
      void fleet
        .learnFromNeighbours()
        .then((learned) => {
          if (learned) this.logger.debug({ learned }, 'learned Pi IPs from the neighbour table');
        })
        .catch((error: unknown) => this.logger.warn({ err: error }, 'neighbour table scan failed'));
    };
    scan();
    this.neighbourTimer = setInterval(scan, seconds * 1000);
    this.neighbourTimer.unref();
  }

  /** nfsd and exports state for /healthz; cached briefly, as each look runs `exportfs -v` and /healthz needs no token. */
  private nfsHealth(fleet: Fleet): Promise<object> {
    const now = this.now();
    if (!this.nfsHealthCache || now - this.nfsHealthCache.at > NFS_HEALTH_CACHE_MS) {
      this.nfsHealthCache = { at: now, value: fleet.health().catch((error: unknown) => ({ error: (error as Error).message })) };
    }
    return this.nfsHealthCache.value;
  }

  /** The proxy policy for the current config (rebuilt on SIGHUP). */
  private policy(fleet: Fleet): ProxyPolicy {
    const { config } = this;
    return proxyPolicy(config, {
      isRegistered: (client) => fleet.isRegistered(client),
      admit: (client) => {
        if (this.gate.kind === 'off') return true;
        // Pi 4/5 and 3B+ carry their serial in option 97; a Pi 3B ROM is known by its MAC.
        const key = client.serial ?? fleet.serialForMac(client.mac) ?? client.mac;
        // A registered serial from the MAC the fleet knows for it goes first: anyone can put a
        // registered serial in a DISCOVER, only a copy of that very Pi also has its MAC.
        const known = fleet.isRegistered({ serial: key }) && fleet.serialForMac(client.mac) === key;
        return this.admission.admit({ key, mac: client.mac, known, now: this.now() });
      },
    });
  }

  private async startDhcp(fleet: Fleet): Promise<void> {
    const { config } = this;
    const dhcp = new ProxyDhcpServer({
      serverIp: config.serverIp,
      dhcpPort: config.dhcpPort,
      pxePort: config.pxePort,
      policy: this.policy(fleet),
      logger: this.libraryLogger('dhcp'),
      // dhcpMode full (issue 12): addresses from our pool, leases in the state dir.
      // Static addresses (pxetools --add … --ip) come from the live registry; the pool never hands them to others.
      ...(config.dhcpMode === 'full'
        ? {
            full: fullDhcpOptions(config, {
              staticAddressFor: (mac, serial) => fleet.staticAddressFor(mac, serial),
              isReserved: (address) => fleet.isStaticAddress(address),
            }),
          }
        : {}),
    });
    dhcp.on('pi-seen', (e) => {
      // Only registered Pis: spoofed DISCOVERs with made-up serials must not grow this map.
      if (e.serial && fleet.isRegistered({ serial: e.serial })) this.macBySerial.set(e.serial, e.mac);
      const ip = e.from.split(':')[0];
      this.bus.emit('pi-seen', {
        ...opt('serial', e.serial),
        mac: e.mac,
        ...opt('model', e.model),
        ...(ip && ip !== '0.0.0.0' ? { ip } : {}),
        answered: e.answered,
        at: this.now(),
      });
    });
    dhcp.on('lease', (e) => {
      // Full mode: a registered Pi's bound address is what --list shows at once (no wait for its traffic).
      const serial = e.serial ?? fleet.serialForMac(e.mac);
      if (e.state === 'bound' && serial && fleet.isRegistered({ serial }))
        fleet.recordSeen({ serial, mac: e.mac, ip: e.address, at: this.now() });
    });
    dhcp.on('offer-sent', (e) => {
      const serial = e.serial ?? fleet.serialForMac(e.mac);
      this.bus.emit('offer-sent', {
        ...opt('serial', serial),
        mac: e.mac,
        kind: e.kind,
        messageType: e.messageType,
        repeat: e.repeat,
        at: this.now(),
      });
    });
    dhcp.on('ignored', (e) => {
      // Every ignored packet is counted by the server (metrics read its stats); the bus, the SSE
      // stream and the logs only hear about ones that concern a network-booting client.
      if (QUIET_IGNORE_REASONS.has(e.reason)) return;
      const serial = e.mac ? fleet.serialForMac(e.mac) : undefined;
      this.bus.emit('dhcp-ignored', {
        ...opt('mac', e.mac),
        ...opt('serial', serial),
        ...opt('kind', e.kind),
        reason: e.reason,
        at: this.now(),
      });
    });
    const bound = await dhcp.start().catch((error: unknown) => {
      const inUse = (error as { cause?: { code?: unknown } }).cause?.code === 'EADDRINUSE';
      // Usually dnsmasq or another DHCP server already answers on this machine.
      const hint = inUse ? ' (another DHCP server runs here? stop it, or start with --no-dhcp to serve TFTP and the API only)' : '';
      throw new StartupError('dhcpPort', `${(error as Error).message}${hint}`, { cause: error });
    });
    this.dhcp = dhcp;
    const seen = new Set<string>();
    for (const socket of bound) {
      const key = `${socket.role}:${socket.address}:${socket.port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      this.addresses.push({ service: socket.role, protocol: 'udp', address: socket.address, port: socket.port });
    }
  }

  private async startApi(fleet: Fleet): Promise<void> {
    const { config } = this;
    const { token, path, created } = await ensureApiToken(config.stateDir);
    this.apiTokenPath = path;
    if (created) this.logger.info({ path }, `API token written to ${path} (mode 0600)`);
    const api = await buildApi({
      // The fleet page (issue 15): public page and assets, its data through /api/v1 with the token.
      routes: [publicRoutes(webRoutes())],
      fleet: fleetPort(fleet, () => this.bus.emit('registry-changed', { at: this.now() })),
      bus: this.bus,
      metrics: this.metrics!,
      token,
      logger: this.libraryLogger('api'),
      ...(this.deps.version ? { version: this.deps.version } : {}),
      health: () => ({
        dhcp: !!this.dhcp,
        tftp: !!this.tftp,
        serverIp: this.config.serverIp,
        pis: fleet.list().length,
        ...(this.tftp
          ? {
              activeTransfers: this.tftp.stats.active,
              queuedTransfers: this.tftp.stats.queued,
              tftpThreads: this.tftp.stats.threads,
              tftpSockets: this.tftp.transferSockets,
            }
          : {}),
        admission: this.admissionStatus(),
        mqtt: this.mqttHealth(),
      }),
      nfsHealth: () => this.nfsHealth(fleet),
    });
    this.api = api;
    try {
      await api.listen({ host: config.apiListen, port: config.apiPort });
    } catch (error) {
      throw new StartupError('apiPort', `cannot listen on ${config.apiListen}:${config.apiPort}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const address = api.server.address();
    if (address && typeof address === 'object')
      this.addresses.push({ service: 'api', protocol: 'tcp', address: address.address, port: address.port });
  }

  /** The MQTT link for /healthz (boot-server status and doctor read it there). */
  private mqttHealth(): MqttHealth {
    if (!this.mqtt) return { state: 'off' };
    const { connected, queued, dropped, reconnects } = this.mqtt.snapshot;
    return { state: connected ? 'connected' : 'reconnecting', queued, dropped, reconnects };
  }

  /** Boot events to the region's MQTT broker (issue 15); connects in the background, never holds up a start or a boot. */
  private startMqtt(fleet: Fleet, url: string): void {
    const mqtt = new MqttBootPublisher({
      url,
      region: this.config.region ?? defaultRegion(hostname()),
      bus: this.bus,
      isRegistered: (serial) => fleet.isRegistered({ serial }),
      pis: () => fleet.list().map((pi) => ({ serial: pi.serial, name: pi.name, model: pi.model })),
      logger: this.logger.child({ subsystem: 'mqtt' }),
    });
    registerMqttMetrics(this.metrics!.registry, () => mqtt.snapshot);
    mqtt.start();
    this.mqtt = mqtt;
  }

  /**
   * Loggers for the servers. At `info` they only speak from `warn` up: the daemon logs the one
   * line per listening socket and the boot events itself; debug and trace show everything.
   */
  private libraryLogger(subsystem: string): Logger {
    const child = this.logger.child({ subsystem }, { level: libraryLevel(this.config.logLevel) });
    this.libraryLoggers.push(child);
    return child;
  }

  /** Learned facts and boot timelines flow back into the fleet. */
  private wireFleetFacts(fleet: Fleet): void {
    const record = <K extends BootEventName>(name: K, serial: string | undefined, event: BootEvents[K]) => {
      if (!serial) return;
      const { at, ...rest } = event as BootEvents[K] & { at: number };
      fleet.recordTimeline(serial, { type: name, ...rest, at });
    };
    this.cleanups.push(
      this.bus.on('pi-seen', (e) => {
        fleet.recordSeen({
          ...opt('serial', e.serial),
          mac: e.mac,
          ...opt('ip', e.ip),
          ...(e.model ? { model: e.model as never } : {}),
          at: e.at,
        });
        record('pi-seen', e.serial ?? fleet.serialForMac(e.mac), e);
        if (e.serial && fleet.isRegistered({ serial: e.serial }))
          this.publish(this.tracker.observe({ type: 'pi-seen', serial: e.serial, ...opt('model', e.model), at: e.at }));
      }),
      this.bus.on('offer-sent', (e) => {
        if (e.serial) this.lastIgnored.delete(e.serial);
        record('offer-sent', e.serial, e);
        this.publish(this.tracker.observe({ type: 'offer-sent', ...opt('serial', e.serial), mac: e.mac, at: e.at }));
      }),
      this.bus.on('dhcp-ignored', (e) => {
        // A waiting Pi re-sends its DISCOVER every few seconds: keep one entry per reason change so
        // the boot steps are not pushed out of the timeline.
        if (!e.serial || this.lastIgnored.get(e.serial) === e.reason) return;
        this.lastIgnored.set(e.serial, e.reason);
        record('dhcp-ignored', e.serial, e);
      }),
      this.bus.on('transfer-started', (e) => {
        const serial = this.tracker.serialOf(e);
        if (serial) this.admission.fetched(serial, e.at);
        this.learnFromTftp(fleet, serial, e.clientIp, e.at);
        this.publish(
          this.tracker.observe({ type: 'transfer-started', ...opt('serial', serial), clientIp: e.clientIp, file: e.file, at: e.at }),
        );
      }),
      this.bus.on('file-served', (e) => {
        const serial = this.tracker.serialOf(e);
        if (serial) this.admission.fetched(serial, e.at);
        record('file-served', serial, e);
        const outcomes = this.tracker.observe({
          type: 'file-served',
          ...opt('serial', serial),
          clientIp: e.clientIp,
          file: e.file,
          at: e.at,
        });
        // The kernel is the file that meets the Pi's 30 s per-file limit first: its time steers the gate.
        if (outcomes.some((o) => o.type === 'boot-complete')) this.gate.observeKernel({ kind: 'served', ms: e.ms }, e.at);
        this.publish(outcomes);
      }),
      this.bus.on('transfer-failed', (e) => {
        const serial = this.tracker.serialOf(e);
        record('transfer-failed', serial, e);
        // A kernel transfer that timed out: the Pi gave up on it (30 s limit), the clearest sign of too many at once.
        if (e.kind === 'timeout' && serial && this.tracker.inProgress(serial) && this.tracker.isKernelFile(serial, e.file))
          this.gate.observeKernel({ kind: 'timed-out' }, e.at);
        this.publish(
          this.tracker.observe({
            type: 'transfer-failed',
            ...opt('serial', serial),
            clientIp: e.clientIp,
            file: e.file,
            kind: e.kind,
            at: e.at,
          }),
        );
      }),
      this.bus.on('boot-complete', (e) => record('boot-complete', e.serial, e)),
      this.bus.on('boot-failed', (e) => record('boot-failed', e.serial, e)),
    );
  }

  /** A TFTP request tells us the Pi's IP; the MAC comes from its DHCP traffic or the registry. */
  private learnFromTftp(fleet: Fleet, serial: string | undefined, ip: string, at: number): void {
    if (!serial) return;
    let mac = this.macBySerial.get(serial);
    if (!mac && fleet.isRegistered({ serial })) {
      const pi = fleet.get(serial);
      if (pi.macSource !== 'derived') mac = pi.mac;
    }
    if (mac) fleet.recordSeen({ serial, mac, ip, at });
  }

  /** Called from bus listeners: the bus delivers these after the event that ended the boot (see EventBus). */
  private publish(outcomes: BootOutcome[]): void {
    for (const outcome of outcomes) {
      this.admission.release(outcome.serial);
      if (outcome.type === 'boot-complete') this.bus.emit('boot-complete', { serial: outcome.serial, ms: outcome.ms, at: outcome.at });
      else this.bus.emit('boot-failed', { serial: outcome.serial, reason: outcome.reason, at: outcome.at });
    }
  }

  /** Boot events at info (what an operator follows), packet-level ones at debug. */
  private wireLogs(): void {
    const log = this.logger.child({ subsystem: 'boot' });
    const infoEvents = new Set<BootEventName>(['offer-sent', 'boot-complete', 'boot-failed', 'registry-changed']);
    const warnEvents = new Set<BootEventName>(['boot-failed']);
    this.cleanups.push(
      this.bus.onAny((name, event) => {
        const { at: _at, ...fields } = event as { at: number };
        if (warnEvents.has(name)) log.warn({ event: name, ...fields }, name);
        else if (infoEvents.has(name)) log.info({ event: name, ...fields }, name);
        else log.debug({ event: name, ...fields }, name);
      }),
    );
  }

  /**
   * Applies a new config (SIGHUP): log level, DHCP answer mode, PXE files, admission and timeline
   * settings take effect at once; the returned keys need a restart and keep their old values.
   */
  async reload(next: BootServerConfig): Promise<string[]> {
    const restart = keysNeedingRestart(this.config, next);
    const previousInterval = this.config.neighbourScanInterval;
    const applied: BootServerConfig = { ...next };
    for (const key of restart) (applied as unknown as Record<string, unknown>)[key] = this.config[key as keyof BootServerConfig];
    this.config = applied;
    this.logger.level = applied.logLevel;
    for (const child of this.libraryLoggers) child.level = libraryLevel(applied.logLevel);
    this.tracker.setTftpAfterOfferTimeout(applied.tftpAfterOfferTimeout * 1000);
    this.gate.setMode(admissionMode(applied.admissionBudget));
    if (this.fleet) {
      await this.fleet.reload();
      this.dhcp?.updatePolicy(this.policy(this.fleet));
      if (next.neighbourScanInterval !== previousInterval) this.scheduleNeighbourScans();
    }
    return restart;
  }

  /** Closes every socket, flushes learned facts; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.tickTimer) clearInterval(this.tickTimer);
      if (this.neighbourTimer) clearInterval(this.neighbourTimer);
      const errors: unknown[] = [];
      const attempt = async (what: () => Promise<unknown> | undefined) => {
        try {
          await what();
        } catch (error) {
          errors.push(error);
        }
      };
      await attempt(() => this.api?.close());
      await attempt(() => this.mqtt?.close());
      await attempt(() => this.dhcp?.close());
      await attempt(() => this.tftp?.close());
      for (const cleanup of this.cleanups.splice(0)) cleanup();
      this.metrics?.close();
      await attempt(() => this.fleet?.close());
      for (const error of errors) this.logger.warn({ err: error }, 'error while closing');
    })();
    return this.closing;
  }
}

/** Starts a BootServer; rejects (with everything closed again) when any part cannot start. */
export async function startBootServer(
  config: BootServerConfig,
  deps: BootServerDeps = {},
): Promise<{ server: BootServer; addresses: ListeningSocket[] }> {
  const server = new BootServer(config, deps);
  const addresses = await server.start();
  return { server, addresses };
}

async function prepareFolder(key: string, path: string, create: boolean): Promise<void> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new StartupError(key, `cannot use ${path}: ${(error as Error).message}`, { cause: error });
    if (!create) throw new StartupError(key, `${path} does not exist`);
    await mkdir(path, { recursive: true }).catch((cause: unknown) => {
      throw new StartupError(key, `cannot create ${path}: ${(cause as Error).message}`, { cause });
    });
    return;
  }
  if (!info.isDirectory()) throw new StartupError(key, `${path} is not a directory`);
  try {
    await access(path, constants.R_OK | constants.X_OK);
  } catch (error) {
    throw new StartupError(key, `${path} is not readable`, { cause: error });
  }
}

function libraryLevel(level: BootServerConfig['logLevel']): BootServerConfig['logLevel'] {
  return level === 'info' ? 'warn' : level;
}

function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V });
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
