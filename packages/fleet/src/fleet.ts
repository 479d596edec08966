import { mkdirSync, watch as fsWatch, type FSWatcher } from 'node:fs';
import { nfsHealth, type ManagedExports } from '@iot-tofu/nfs-server-lite';
import { parseSerial } from '@iot-tofu/rpi';
import { adoptUpstream } from './adopt.js';
import { upgradeLayout } from './boot-folder.js';
import { FleetCore } from './core.js';
import { resizeDockerDisk } from './docker-disk.js';
import { FleetError } from './errors.js';
import { safeMac, safeShort } from './facts.js';
import { addPi } from './pi-add.js';
import { removePi } from './pi-remove.js';
import { resetFleet } from './reset.js';
import { settleAll } from './settle.js';
import { removeBase, setupBase } from './setup.js';
import type {
  AddRequest,
  AddResult,
  BaseJson,
  DiscoveredPi,
  FleetHealth,
  FleetOptions,
  PiJson,
  ProgressOptions,
  RegistryChange,
  RemoveResult,
  ResizeDockerDiskResult,
  SeenFact,
  SetupRequest,
  SetupResult,
  TimelineEvent,
} from './types.js';

export { PI_EXPORT_OPTIONS } from './core.js';
export { BASE_NAME_PATTERN } from './setup.js';
export { copyTree } from './copy.js';
export { networkOf, defaultExportsClients } from './net.js';
export { parseNeighbours, type Neighbour } from './facts.js';

/**
 * The fleet: every verb the CLI and the HTTP API offer, over one state dir. Build it with
 * `Fleet.open(options)`; call `close()` to flush learned facts and stop watching. A facade: the
 * state every verb shares is FleetCore (core.ts); the verbs live in setup.ts (bases), pi-add.ts,
 * pi-remove.ts, settle.ts (repair after a kill), reset.ts, adopt.ts, docker-disk-verbs.ts;
 * learned facts and timelines in facts.ts.
 */
export class Fleet {
  readonly tftpRoot: string;
  readonly nfsRoot: string;
  readonly stateDir: string;
  readonly serverIp: string;
  readonly exportsClients: string;
  readonly exports: ManagedExports;
  private readonly core: FleetCore;
  private watcher: FSWatcher | undefined;
  private readonly watchers = new Set<(change: RegistryChange) => void>();
  private closed = false;

  private constructor(options: FleetOptions) {
    this.core = new FleetCore(options);
    this.tftpRoot = this.core.tftpRoot;
    this.nfsRoot = this.core.nfsRoot;
    this.stateDir = this.core.stateDir;
    this.serverIp = this.core.serverIp;
    this.exportsClients = this.core.exportsClients;
    this.exports = this.core.exports;
  }

  /** Loads the registry and learned facts (creating nothing until something is written). */
  static async open(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    const core = fleet.core;
    await core.reload();
    if (core.isRoot()) {
      await settleAll(core);
      await core.reload();
    }
    await upgradeLayout(core);
    await core.facts.load();
    return fleet;
  }

  // ---------------------------------------------------------------- queries (fast, in memory)

  /**
   * Every registered Pi, sorted by serial, with what was learned from its traffic; with
   * `includeDiscovered` also the Pis seen on the network but not registered.
   */
  list(): PiJson[];
  list(options: { includeDiscovered: true }): { pis: PiJson[]; discovered: DiscoveredPi[] };
  list(options: { includeDiscovered?: false }): PiJson[];
  list(options: { includeDiscovered?: boolean } = {}): PiJson[] | { pis: PiJson[]; discovered: DiscoveredPi[] } {
    const data = this.core.data;
    const pis = Object.keys(data.pis)
      .sort()
      .map((serial) => this.core.toJson(data.pis[serial]!));
    return options.includeDiscovered ? { pis, discovered: this.discovered() } : pis;
  }

  /**
   * nfsd state, what the kernel exports now, and our exports file (for /healthz and the API).
   * `foreignExportsIssues`: what the last `exportfs -ra` said about other people's exports files
   * (tolerated: our change was applied), absent when it ran clean.
   */
  async health(): Promise<FleetHealth> {
    const foreign = this.exports.foreignIssues;
    return {
      ...(await nfsHealth({ runner: this.core.runner })),
      exportsFile: this.exports.file,
      exportsClients: this.exportsClients,
      ...(foreign ? { foreignExportsIssues: { at: foreign.at, messages: foreign.issues.map((i) => i.message) } } : {}),
    };
  }

  /** One Pi, or PI_NOT_FOUND. Accepts any serial form (16 digits, upper case, leading zeros). */
  get(serial: string): PiJson {
    const short = parseSerial(serial).short;
    const entry = this.core.data.pis[short];
    if (!entry) throw new FleetError('PI_NOT_FOUND', `Pi ${short} is not registered`);
    return this.core.toJson(entry);
  }

  /** Used per DHCP packet and per TFTP request: pure map lookups. */
  isRegistered(query: { serial?: string; mac?: string }): boolean {
    if (query.serial !== undefined) {
      const short = /^[0-9a-f]{8}$/.test(query.serial) ? query.serial : safeShort(query.serial);
      if (short && this.core.data.pis[short]) return true;
    }
    if (query.mac !== undefined) {
      const mac = safeMac(query.mac);
      if (mac && this.core.facts.hasMac(mac)) return true;
    }
    return false;
  }

  /** The registered serial owning a MAC (configured, learned or derived), if any. */
  serialForMac(mac: string): string | undefined {
    const normal = safeMac(mac);
    return normal ? this.core.facts.serialForMac(normal) : undefined;
  }

  /**
   * The fixed address full-DHCP mode hands this client (`pxetools --add … --ip`): by the serial it
   * sent (option 97), else by the MAC the fleet knows for a registered Pi. Per DISCOVER: lookups only.
   */
  staticAddressFor(mac: string, serial?: string): string | undefined {
    const short = serial !== undefined && /^[0-9a-f]{8}$/.test(serial) ? serial : this.serialForMac(mac);
    return short ? this.core.data.pis[short]?.staticIp : undefined;
  }

  /** True when some registered Pi has this static address: the pool never hands it to anyone else. */
  isStaticAddress(address: string): boolean {
    return Object.values(this.core.data.pis).some((pi) => pi.staticIp === address);
  }

  bases(): BaseJson[] {
    const data = this.core.data;
    return Object.keys(data.bases)
      .sort()
      .map((name) => ({ ...data.bases[name]!, default: data.defaultBase === name }));
  }

  /** Pis seen on the network whose serial (or MAC) is not registered. */
  discovered(): DiscoveredPi[] {
    return this.core.facts.discovered();
  }

  timeline(serial: string): TimelineEvent[] {
    return this.core.facts.timeline(serial);
  }

  // ---------------------------------------------------------------- learned facts (facts.ts)

  /** A fact learned from DHCP/TFTP traffic. Cheap: memory now, seen.json at most every seenFlushMs. */
  recordSeen(fact: SeenFact): void {
    this.core.facts.recordSeen(fact);
  }

  /** IPs of registered Pis from `ip -j neigh show`; `persist: false` (the CLI) keeps them in memory only. */
  learnFromNeighbours(options: { persist?: boolean } = {}): Promise<number> {
    return this.core.facts.learnFromNeighbours(options);
  }

  /** Appends to a Pi's boot timeline, keeping the last `timelineLimit` events. */
  recordTimeline(serial: string, event: { type: string; at?: string | Date | number; [key: string]: unknown }): void {
    this.core.facts.recordTimeline(serial, event);
  }

  /** Writes learned facts now (atomic); called by the debounce timer and close(). */
  flushSeen(): Promise<void> {
    return this.core.facts.flush();
  }

  // ---------------------------------------------------------------- registry changes by others

  /** Re-reads registry.json (another process, e.g. the CLI, may have changed it). */
  reload(): Promise<RegistryChange> {
    return this.core.reload();
  }

  /** Calls `onChange` after another process changed the registry; returns an unsubscribe function. */
  watch(onChange: (change: RegistryChange) => void): () => void {
    this.watchers.add(onChange);
    if (!this.watcher) {
      let timer: NodeJS.Timeout | undefined;
      const fire = () => {
        timer = undefined;
        void this.reload()
          .then((change) => {
            if (change.added.length || change.removed.length || change.changed.length) for (const w of this.watchers) w(change);
          })
          .catch((error: unknown) => this.core.logger.warn({ err: error }, 'registry reload failed'));
      };
      try {
        mkdirSync(this.stateDir, { recursive: true });
        this.watcher = fsWatch(this.stateDir, { persistent: false }, (_event, name) => {
          if (name !== 'registry.json') return;
          if (!timer) timer = setTimeout(fire, 30);
        });
        this.watcher.on('error', (error) => this.core.logger.warn({ err: error }, 'registry watch failed'));
      } catch (error) {
        this.core.logger.warn({ err: error }, 'cannot watch the state dir; call reload() yourself');
      }
    }
    return () => {
      this.watchers.delete(onChange);
      if (this.watchers.size === 0) {
        this.watcher?.close();
        this.watcher = undefined;
      }
    };
  }

  /** Flushes learned facts and stops watching. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    this.watchers.clear();
    await this.core.facts.close();
  }

  // ---------------------------------------------------------------- verbs

  /**
   * Imports a base: its root to `<nfsRoot>/bases/<name>/`, its boot files to the state dir and,
   * for the default base, to `<tftpRoot>/base/` (+ bootcode.bin at the TFTP root for Pi 3).
   * Built in temp siblings and renamed into place; a failure leaves nothing behind.
   */
  setup(request: SetupRequest, options: ProgressOptions = {}): Promise<SetupResult> {
    return setupBase(this.core, request, options);
  }

  /** Deletes a base no registered Pi uses (BASE_IN_USE otherwise). */
  removeBase(name: string): Promise<{ name: string; removed: boolean }> {
    return removeBase(this.core, name);
  }

  /**
   * Registers a Pi and builds its boot folder, root, docker disk and exports. Transactional:
   * everything is built in temp siblings and committed with renames; any failure undoes every step.
   */
  add(request: AddRequest, options: ProgressOptions = {}): Promise<AddResult> {
    return addPi(this.core, request, options);
  }

  /** Unexports and deletes a Pi (its docker disk with its root). Idempotent. */
  remove(serial: string): Promise<RemoveResult> {
    return removePi(this.core, serial);
  }

  /**
   * Grows a Pi's docker disk image offline (e2fsck -f, larger sparse file, resize2fs). Only while
   * the Pi is off: the server cannot tell whether the Pi has the image mounted.
   */
  resizeDockerDisk(serial: string, size: string): Promise<ResizeDockerDiskResult> {
    return resizeDockerDisk(this.core, serial, size);
  }

  /** Removes every Pi, every base, the boot base and our exports file: back to before setup. */
  reset(): Promise<{ removed: string[]; bases: string[] }> {
    return resetFleet(this.core);
  }

  /** Adopts an upstream pxetools installation (`<tftpRoot>/<serial>/owner|name`). */
  adopt(options: { upstreamExports?: string } = {}): Promise<{ adopted: string[]; staleUpstreamExportLines: string[] }> {
    return adoptUpstream(this.core, options);
  }
}
