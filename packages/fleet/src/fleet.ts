import { mkdirSync, watch as fsWatch, type FSWatcher } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import {
  ManagedExports,
  execFileRunner,
  nfsHealth,
  silentLogger,
  writeFileAtomic,
  type CommandRunner,
  type ExportClient,
  type ExportEntry,
  type Logger,
} from '@iot-tofu/nfs-server-lite';
import {
  checkHostname,
  checkOwner,
  derivedMacFromSerial,
  isSerialFolderName,
  normalizeConfigTxt,
  normalizeMac,
  parseSerial,
  renderOwnerFile,
} from '@iot-tofu/rpi';
import { cmdlineFromBase, migratePi } from './boot-folder.js';
import { childrenDieWithUs } from './child-runner.js';
import { FleetError } from './errors.js';
import { IntentLog, type Intent } from './intents.js';
import { exists, mountsUnder, removeTree, treeSize, usedBytes } from './fs-util.js';
import { importSource } from './import.js';
import { acquireLock } from './lock.js';
import { LruKeys } from './lru-keys.js';
import { CURRENT_LAYOUT, RegistryStore, emptyRegistry, keyedTable, type RegisteredPi, type RegistryData, type StoredBase } from './registry.js';
import { applyRootfs, planRootfs } from './rootfs.js';
import type {
  AddRequest,
  AddResult,
  BaseJson,
  DiscoveredPi,
  FleetHealth,
  FleetOptions,
  FleetStep,
  PiJson,
  ProgressOptions,
  RegistryChange,
  RemoveResult,
  SeenFact,
  SetupRequest,
  SetupResult,
  TimelineEvent,
} from './types.js';

/** Options every Pi export gets: the root must be writable as root (no_root_squash), synchronous. */
export const PI_EXPORT_OPTIONS = ['rw', 'sync', 'no_subtree_check', 'no_root_squash'];
/** A base name: a folder under <nfsRoot>/bases (the API's schema uses the same pattern). */
export const BASE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const BASE_NAME = BASE_NAME_PATTERN;

/** What seen.json keeps per MAC: the same fields `discovered()` shows. */
type SeenRecord = DiscoveredPi;

interface SeenFile {
  version: 1;
  byMac: Record<string, SeenRecord>;
}

/** One usable IPv4 neighbour (MAC → IP) from `ip -j neigh show` output. */
export interface Neighbour {
  ip: string;
  mac: string;
}

/** Parses `ip -j neigh show`: IPv4 entries with a link-layer address that is not FAILED/INCOMPLETE. Pure. */
export function parseNeighbours(json: string): Neighbour[] {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(data)) return [];
  const out: Neighbour[] = [];
  for (const entry of data as Array<{ dst?: unknown; lladdr?: unknown; state?: unknown }>) {
    if (typeof entry.dst !== 'string' || typeof entry.lladdr !== 'string' || !/^\d+\.\d+\.\d+\.\d+$/.test(entry.dst)) continue;
    const states = Array.isArray(entry.state) ? (entry.state as unknown[]) : [];
    if (states.includes('FAILED') || states.includes('INCOMPLETE')) continue;
    const mac = safeMac(entry.lladdr);
    if (mac) out.push({ ip: entry.dst, mac });
  }
  return out;
}

/** IPv4 network of `ip/prefix` as `a.b.c.d/prefix`. Pure. */
export function networkOf(ip: string, prefix: number): string {
  const parts = ip.split('.').map(Number);
  const value = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  const net = (value & mask) >>> 0;
  return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${prefix}`;
}

/** The subnet of `serverIp` on this machine (its interface's CIDR), else its /24. */
export function defaultExportsClients(serverIp: string, interfaces = networkInterfaces()): string {
  for (const list of Object.values(interfaces)) {
    for (const entry of list ?? []) {
      if (entry.family === 'IPv4' && entry.address === serverIp && entry.cidr) {
        const prefix = Number(entry.cidr.split('/')[1]);
        return networkOf(serverIp, prefix);
      }
    }
  }
  return networkOf(serverIp, 24);
}

/**
 * The fleet: every verb the CLI and the HTTP API offer, over one state dir. Build it with
 * `Fleet.open(options)`; call `close()` to flush learned facts and stop watching.
 */
export class Fleet {
  readonly tftpRoot: string;
  readonly nfsRoot: string;
  readonly stateDir: string;
  readonly serverIp: string;
  readonly exportsClients: string;
  readonly exports: ManagedExports;
  private readonly runner: CommandRunner;
  private readonly logger: Logger;
  private readonly clock: () => Date;
  private readonly timelineLimit: number;
  private readonly seenFlushMs: number;
  private readonly isRoot: () => boolean;
  private readonly beforeStep: (step: FleetStep) => void | Promise<void>;
  private readonly store: RegistryStore;
  private readonly intents: IntentLog;

  private data: RegistryData = emptyRegistry();
  private registeredMacs = new Map<string, string>();
  private seen = new Map<string, SeenRecord>();
  private seenDirty = false;
  private seenTimer: NodeJS.Timeout | undefined;
  private readonly timelines = new Map<string, TimelineEvent[]>();
  /** Unregistered serials with a timeline, least recently recorded first (bounded). */
  private readonly strangerTimelines: LruKeys;
  /** MACs of learned records that belong to no registered Pi, least recently seen first (bounded). */
  private readonly strangerMacs: LruKeys;
  private watcher: FSWatcher | undefined;
  private readonly watchers = new Set<(change: RegistryChange) => void>();
  private reflinkProbe: Promise<boolean> | undefined;
  private closed = false;

  private constructor(options: FleetOptions) {
    this.tftpRoot = options.tftpRoot;
    this.nfsRoot = options.nfsRoot;
    this.stateDir = options.stateDir;
    this.serverIp = options.serverIp;
    this.exportsClients = options.exportsClients ?? defaultExportsClients(options.serverIp);
    this.runner = options.runner ?? childrenDieWithUs(execFileRunner);
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? (() => new Date());
    this.timelineLimit = options.timelineLimit ?? 100;
    this.strangerTimelines = new LruKeys(options.unregisteredLimit ?? 256);
    this.strangerMacs = new LruKeys(options.unregisteredLimit ?? 256);
    this.seenFlushMs = options.seenFlushMs ?? 2000;
    this.isRoot = options.isRoot ?? (() => process.geteuid?.() === 0);
    this.beforeStep = options.beforeStep ?? (() => undefined);
    this.store = new RegistryStore(options.stateDir);
    this.intents = new IntentLog(join(options.stateDir, 'intents'));
    this.exports = new ManagedExports({ file: options.exportsFile ?? '/etc/exports.d/iot-tofu.exports', runner: this.runner, logger: this.logger, clock: this.clock });
  }

  /** Loads the registry and learned facts (creating nothing until something is written). */
  static async open(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    await fleet.reload();
    if (fleet.isRoot()) {
      await fleet.settleAll();
      await fleet.reload();
    }
    await fleet.upgradeLayout();
    await fleet.loadSeen();
    return fleet;
  }

  /**
   * Brings the Pis of an older release to the current layout (boot-folder.ts): run by whatever
   * opens the fleet as root next (any pxetools verb, `boot-server start`). Under the registry lock;
   * each step is idempotent and the layout is recorded last, so a kill halfway is finished later.
   */
  private async upgradeLayout(): Promise<void> {
    if (this.data.layout >= CURRENT_LAYOUT || !this.isRoot()) return;
    await this.store.mutate(async (data) => {
      if (data.layout >= CURRENT_LAYOUT) return { write: false, value: undefined };
      for (const pi of Object.values(data.pis)) {
        const tftpDir = join(this.tftpRoot, pi.serial);
        if (!(await exists(tftpDir))) continue;
        const base = pi.base && !pi.ownFilesystem ? data.bases[pi.base] : undefined;
        const { changed } = await migratePi({ serverIp: this.serverIp, tftpDir, nfsDir: join(this.nfsRoot, pi.serial), baseBootDir: base?.bootDir ?? null });
        this.logger.info({ serial: pi.serial, changed }, 'pi brought to the current layout');
      }
      data.layout = CURRENT_LAYOUT;
      return { write: true, value: undefined };
    });
    await this.reload();
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
    const pis = Object.keys(this.data.pis)
      .sort()
      .map((serial) => this.toJson(this.data.pis[serial]!));
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
      ...(await nfsHealth({ runner: this.runner })),
      exportsFile: this.exports.file,
      exportsClients: this.exportsClients,
      ...(foreign ? { foreignExportsIssues: { at: foreign.at, messages: foreign.issues.map((i) => i.message) } } : {}),
    };
  }

  /** One Pi, or PI_NOT_FOUND. Accepts any serial form (16 digits, upper case, leading zeros). */
  get(serial: string): PiJson {
    const short = parseSerial(serial).short;
    const entry = this.data.pis[short];
    if (!entry) throw new FleetError('PI_NOT_FOUND', `Pi ${short} is not registered`);
    return this.toJson(entry);
  }

  /** Used per DHCP packet and per TFTP request: pure map lookups. */
  isRegistered(query: { serial?: string; mac?: string }): boolean {
    if (query.serial !== undefined) {
      const short = /^[0-9a-f]{8}$/.test(query.serial) ? query.serial : safeShort(query.serial);
      if (short && this.data.pis[short]) return true;
    }
    if (query.mac !== undefined) {
      const mac = safeMac(query.mac);
      if (mac && this.registeredMacs.has(mac)) return true;
    }
    return false;
  }

  /** The registered serial owning a MAC (configured, learned or derived), if any. */
  serialForMac(mac: string): string | undefined {
    const normal = safeMac(mac);
    return normal ? this.registeredMacs.get(normal) : undefined;
  }

  bases(): BaseJson[] {
    return Object.keys(this.data.bases)
      .sort()
      .map((name) => ({ ...this.data.bases[name]!, default: this.data.defaultBase === name }));
  }

  /** Pis seen on the network whose serial (or MAC) is not registered. */
  discovered(): DiscoveredPi[] {
    const out: DiscoveredPi[] = [];
    for (const record of this.seen.values()) {
      if (record.serial ? this.data.pis[record.serial] : this.registeredMacs.has(record.mac)) continue;
      out.push({ ...record });
    }
    return out.sort((a, b) => (a.serial ?? `~${a.mac}`).localeCompare(b.serial ?? `~${b.mac}`));
  }

  timeline(serial: string): TimelineEvent[] {
    const short = safeShort(serial);
    return short ? [...(this.timelines.get(short) ?? [])] : [];
  }

  // ---------------------------------------------------------------- learned facts

  /** A fact learned from DHCP/TFTP traffic. Cheap: memory now, seen.json at most every seenFlushMs. */
  recordSeen(fact: SeenFact): void {
    const mac = safeMac(fact.mac);
    if (!mac) return;
    const at = this.isoTime(fact.at);
    const previous = this.seen.get(mac);
    const serial = (fact.serial !== undefined ? safeShort(fact.serial) : undefined) ?? previous?.serial ?? this.registeredMacs.get(mac) ?? null;
    const record: SeenRecord = {
      serial,
      mac,
      ip: fact.ip ?? previous?.ip ?? null,
      model: fact.model ?? previous?.model ?? null,
      firstSeen: previous?.firstSeen ?? at,
      lastSeen: previous && previous.lastSeen > at ? previous.lastSeen : at,
    };
    this.seen.set(mac, record);
    if (serial && this.data.pis[serial]) this.registeredMacs.set(mac, serial);
    this.keepOrBound(record);
    this.seenDirty = true;
    if (!this.seenTimer && !this.closed) {
      this.seenTimer = setTimeout(() => {
        this.seenTimer = undefined;
        void this.flushSeen().catch((error: unknown) => this.logger.warn({ err: error }, 'could not save learned facts'));
      }, this.seenFlushMs);
      this.seenTimer.unref();
    }
  }

  /**
   * Fills in IPs of registered Pis from the kernel's neighbour table (`ip -j neigh show`): a Pi
   * whose MAC we know but whose DHCP went to the router still shows up there once it talks to us.
   * `persist: false` (the CLI) only updates what this process shows; the daemon owns seen.json.
   */
  async learnFromNeighbours(options: { persist?: boolean } = {}): Promise<number> {
    let stdout: string;
    try {
      ({ stdout } = await this.runner('ip', ['-j', 'neigh', 'show']));
    } catch (error) {
      this.logger.debug({ err: error }, 'ip neigh failed');
      return 0;
    }
    let learned = 0;
    const at = this.clock().toISOString();
    for (const { ip, mac } of parseNeighbours(stdout)) {
      const serial = this.registeredMacs.get(mac);
      if (!serial) continue;
      const previous = this.seen.get(mac);
      if (previous?.ip === ip) continue;
      this.seen.set(mac, { serial, mac, ip, model: previous?.model ?? null, firstSeen: previous?.firstSeen ?? at, lastSeen: previous?.lastSeen ?? at });
      learned++;
    }
    if (learned && (options.persist ?? true)) {
      this.seenDirty = true;
      await this.flushSeen();
    }
    return learned;
  }

  /** Appends to a Pi's boot timeline, keeping the last `timelineLimit` events. */
  recordTimeline(serial: string, event: { type: string; at?: string | Date | number; [key: string]: unknown }): void {
    const short = safeShort(serial);
    if (!short) return;
    const list = this.timelines.get(short) ?? [];
    list.push({ ...event, type: event.type, at: this.isoTime(event.at) });
    if (list.length > this.timelineLimit) list.splice(0, list.length - this.timelineLimit);
    this.timelines.set(short, list);
    if (this.data.pis[short]) this.strangerTimelines.delete(short);
    else for (const evicted of this.strangerTimelines.touch(short)) this.timelines.delete(evicted);
  }

  /** Registered Pis keep their learned record; strangers share a bounded, least-recently-seen-first pool. */
  private keepOrBound(record: SeenRecord): void {
    const registered = record.serial ? !!this.data.pis[record.serial] : false;
    if (registered || this.registeredMacs.has(record.mac)) this.strangerMacs.delete(record.mac);
    else for (const evicted of this.strangerMacs.touch(record.mac)) this.seen.delete(evicted);
  }

  /** Writes learned facts now (atomic); called by the debounce timer and close(). */
  async flushSeen(): Promise<void> {
    if (!this.seenDirty) return;
    this.seenDirty = false;
    const file: SeenFile = { version: 1, byMac: Object.fromEntries(this.seen) };
    await mkdir(this.stateDir, { recursive: true });
    await writeFileAtomic(join(this.stateDir, 'seen.json'), `${JSON.stringify(file)}\n`);
  }

  // ---------------------------------------------------------------- registry changes by others

  /** Re-reads registry.json (another process, e.g. the CLI, may have changed it). */
  async reload(): Promise<RegistryChange> {
    const before = this.data;
    this.data = await this.store.read();
    this.rebuildIndex();
    const beforeKeys = new Set(Object.keys(before.pis));
    const afterKeys = new Set(Object.keys(this.data.pis));
    return {
      added: [...afterKeys].filter((k) => !beforeKeys.has(k)).sort(),
      removed: [...beforeKeys].filter((k) => !afterKeys.has(k)).sort(),
      changed: [...afterKeys].filter((k) => beforeKeys.has(k) && JSON.stringify(before.pis[k]) !== JSON.stringify(this.data.pis[k])).sort(),
    };
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
          .catch((error: unknown) => this.logger.warn({ err: error }, 'registry reload failed'));
      };
      try {
        mkdirSync(this.stateDir, { recursive: true });
        this.watcher = fsWatch(this.stateDir, { persistent: false }, (_event, name) => {
          if (name !== 'registry.json') return;
          if (!timer) timer = setTimeout(fire, 30);
        });
        this.watcher.on('error', (error) => this.logger.warn({ err: error }, 'registry watch failed'));
      } catch (error) {
        this.logger.warn({ err: error }, 'cannot watch the state dir; call reload() yourself');
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
    if (this.seenTimer) clearTimeout(this.seenTimer);
    this.seenTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    this.watchers.clear();
    await this.flushSeen();
  }

  // ---------------------------------------------------------------- setup / bases

  /**
   * Imports a base: its root to `<nfsRoot>/bases/<name>/`, its boot files to the state dir and,
   * for the default base, to `<tftpRoot>/base/` (+ bootcode.bin at the TFTP root for Pi 3).
   * Built in temp siblings and renamed into place; a failure leaves nothing behind.
   */
  async setup(request: SetupRequest, options: ProgressOptions = {}): Promise<SetupResult> {
    const started = Date.now();
    this.requireRoot('setup');
    const name = request.base;
    if (!BASE_NAME.test(name) || name === 'base') throw new FleetError('INVALID_REQUEST', `Invalid base name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-'`);
    const tag = randomBytes(4).toString('hex');
    const basesDir = join(this.nfsRoot, 'bases');
    const bootStore = join(this.stateDir, 'bases', name);
    await mkdir(basesDir, { recursive: true });
    await mkdir(join(this.stateDir, 'bases'), { recursive: true });
    await mkdir(this.tftpRoot, { recursive: true });
    // One setup at a time: they share <tftpRoot>/base and the temp names below.
    const release = await this.lockSetup();
    const intent: Intent = { op: 'setup', base: name, tag, makeDefault: false };
    try {
      await this.settleSetups();
      await this.reload();
      if (this.data.bases[name] || (await exists(join(this.nfsRoot, 'bases', name)))) {
        throw new FleetError('BASE_EXISTS', `base ${name} already exists (${join(this.nfsRoot, 'bases', name)}); remove it with pxetools remove-base ${name} or pick another name`);
      }
      intent.makeDefault = request.makeDefault ?? !this.data.defaultBase;
      await this.intents.record(intent);
    } catch (error) {
      await release();
      throw error;
    }
    const tmpRoot = join(basesDir, `.${name}.tmp-${tag}`);
    const tmpBoot = join(this.stateDir, 'bases', `.${name}.tmp-${tag}`);
    const tmpTftpBase = join(this.tftpRoot, `.base.tmp-${tag}`);
    const scratch = join(this.stateDir, `.scratch-${tag}`);
    const undo: Array<() => Promise<void>> = [];
    try {
      await mkdir(scratch, { recursive: true });
      const step = async (s: FleetStep) => this.beforeStep(s);
      await importSource(request.source, { bootDest: tmpBoot, rootDest: tmpRoot, scratch, runner: this.runner, step, onProgress: options.onProgress });
      const layout: BaseJson['layout'] = (await exists(join(tmpRoot, 'boot', 'firmware'))) ? 'bookworm' : 'legacy';
      if (!(await exists(join(tmpRoot, 'etc')))) throw new FleetError('BASE_INVALID', `the root filesystem of ${name} has no /etc; is it really a Raspberry Pi OS root?`);
      const size = await treeSize(tmpRoot);
      const makeDefault = intent.makeDefault;
      if (makeDefault) {
        await copyTree(this.runner, tmpBoot, tmpTftpBase);
      }
      await this.beforeStep('setup:commit');
      await rename(tmpRoot, join(basesDir, name));
      undo.push(() => rename(join(basesDir, name), tmpRoot));
      await rename(tmpBoot, bootStore);
      undo.push(() => rename(bootStore, tmpBoot));
      let oldTftpBase: string | undefined;
      if (makeDefault) {
        if (await exists(join(this.tftpRoot, 'base'))) {
          oldTftpBase = join(this.tftpRoot, `.base.old-${tag}`);
          await rename(join(this.tftpRoot, 'base'), oldTftpBase);
          const old = oldTftpBase;
          undo.push(() => rename(old, join(this.tftpRoot, 'base')));
        }
        await rename(tmpTftpBase, join(this.tftpRoot, 'base'));
        undo.push(() => rename(join(this.tftpRoot, 'base'), tmpTftpBase));
        if (await exists(join(bootStore, 'bootcode.bin'))) {
          // Pi 3 ROMs ask for /bootcode.bin at the TFTP root before any serial folder (E13).
          const tmpCode = join(this.tftpRoot, `.bootcode.bin.tmp-${tag}`);
          await copyFile(join(bootStore, 'bootcode.bin'), tmpCode);
          await chmod(tmpCode, 0o644);
          await rename(tmpCode, join(this.tftpRoot, 'bootcode.bin'));
        }
      }
      const base: StoredBase = {
        name,
        rootDir: join(basesDir, name),
        bootDir: bootStore,
        layout,
        source: describeSource(request.source),
        importedAt: this.clock().toISOString(),
        bytes: size.bytes,
        files: size.files,
      };
      await this.beforeStep('setup:registry');
      await this.store.mutate((data) => {
        data.bases[name] = base;
        if (makeDefault) data.defaultBase = name;
        return { write: true, value: undefined };
      });
      this.data.bases[name] = base;
      if (makeDefault) this.data.defaultBase = name;
      if (oldTftpBase) await rm(oldTftpBase, { recursive: true, force: true });
      await this.intents.clear(intent);
      this.logger.info({ base: name, layout, bytes: size.bytes }, 'base imported');
      return { base: { ...base, default: makeDefault }, ms: Date.now() - started };
    } catch (error) {
      let undone = true;
      for (const step of undo.reverse()) {
        await step().catch((e: unknown) => {
          undone = false;
          this.logger.error({ err: e }, 'setup rollback step failed');
        });
      }
      if (undone) await this.intents.clear(intent);
      throw error;
    } finally {
      await Promise.all([tmpRoot, tmpBoot, tmpTftpBase, scratch].map((p) => removeTree(p)));
      await release();
    }
  }

  /** The lock setup and remove-base hold: they share `<tftpRoot>/base` and the temp names. */
  private async lockSetup(): Promise<() => Promise<void>> {
    await mkdir(join(this.stateDir, 'locks'), { recursive: true });
    return acquireLock(join(this.stateDir, 'locks', 'setup.lock'), { timeoutMs: 0, what: 'setup (another setup or remove-base is running)', code: 'LOCKED' });
  }

  /**
   * Repairs what killed setups left (the caller holds the setup lock): a base that did not reach
   * the registry is undone (its folders deleted, the previous `<tftpRoot>/base` put back); one
   * that did is kept. Then temp trees are swept.
   */
  private async settleSetups(): Promise<void> {
    for (const intent of await this.intents.pending()) {
      if (intent.op !== 'setup') continue;
      const registry = await this.store.read();
      if (!registry.bases[intent.base]) {
        this.logger.warn({ base: intent.base }, 'undoing a setup that was interrupted');
        await removeTree(join(this.nfsRoot, 'bases', intent.base));
        await removeTree(join(this.stateDir, 'bases', intent.base));
        const previous = join(this.tftpRoot, `.base.old-${intent.tag}`);
        if (intent.makeDefault && (await exists(previous))) {
          await removeTree(join(this.tftpRoot, 'base'));
          await rename(previous, join(this.tftpRoot, 'base'));
        } else if (intent.makeDefault && !registry.defaultBase) {
          await removeTree(join(this.tftpRoot, 'base'));
          await rm(join(this.tftpRoot, 'bootcode.bin'), { force: true });
        }
      }
      await this.intents.clear(intent);
    }
    await this.sweepSetupLeftovers();
  }

  /**
   * What a killed setup leaves: temp trees (deleted) and, if it died between moving the old
   * `<tftpRoot>/base` aside and putting the new one in, the old one (moved back). Runs under the
   * setup lock, so no live setup owns these names.
   */
  private async sweepSetupLeftovers(): Promise<void> {
    const leftovers: string[] = [];
    for (const dir of [join(this.nfsRoot, 'bases'), join(this.stateDir, 'bases')]) {
      for (const name of await readdir(dir).catch(() => [] as string[])) if (/^\..+\.tmp-[0-9a-f]+$/.test(name)) leftovers.push(join(dir, name));
    }
    for (const name of await readdir(this.stateDir).catch(() => [] as string[])) if (/^\.scratch-[0-9a-f]+$/.test(name)) leftovers.push(join(this.stateDir, name));
    const tftpNames = await readdir(this.tftpRoot).catch(() => [] as string[]);
    for (const name of tftpNames) if (/^\.(base|bootcode\.bin)\.tmp-[0-9a-f]+$/.test(name)) leftovers.push(join(this.tftpRoot, name));
    const old = tftpNames.filter((n) => /^\.base\.old-[0-9a-f]+$/.test(n));
    if (old[0] && !tftpNames.includes('base')) await rename(join(this.tftpRoot, old[0]), join(this.tftpRoot, 'base'));
    else leftovers.push(...old.map((n) => join(this.tftpRoot, n)));
    for (const path of leftovers) {
      this.logger.warn({ path }, 'removing what an interrupted setup left behind');
      await removeTree(path);
    }
  }

  /**
   * Deletes a base (its root, its boot files, and `<tftpRoot>/base` when it is the default). Refused
   * with BASE_IN_USE while a registered Pi was built from it, or, for the default base, while a
   * Pi relies on `<tftpRoot>/base` for its firmware (own-filesystem and adopted Pis).
   */
  async removeBase(name: string): Promise<{ name: string; removed: boolean }> {
    this.requireRoot('remove-base');
    const release = await this.lockSetup();
    try {
      await this.settleSetups();
      await this.reload();
      const base = this.data.bases[name];
      if (!base) {
        // Folders of a base no registry knows (left by an older release's killed setup): the operator asked for them to go.
        const orphans = BASE_NAME.test(name) ? [join(this.nfsRoot, 'bases', name), join(this.stateDir, 'bases', name)] : [];
        let removed = false;
        for (const dir of orphans) {
          if (await exists(dir)) {
            await removeTree(dir);
            removed = true;
          }
        }
        return { name, removed };
      }
      const isDefault = this.data.defaultBase === name;
      const users = Object.values(this.data.pis).filter((p) => p.base === name || (isDefault && p.base === null));
      if (users.length) {
        throw new FleetError('BASE_IN_USE', `base ${name} is used by ${users.map((p) => p.serial).join(', ')}; remove those Pis first`);
      }
      const tag = randomBytes(4).toString('hex');
      const trash: string[] = [];
      const moves: Array<[string, string]> = [[base.rootDir, join(this.nfsRoot, 'bases', `.${name}.tmp-${tag}`)], [base.bootDir, join(this.stateDir, 'bases', `.${name}.tmp-${tag}`)]];
      if (isDefault) moves.push([join(this.tftpRoot, 'base'), join(this.tftpRoot, `.base.tmp-${tag}`)]);
      for (const [from, to] of moves) {
        if (await exists(from)) {
          await rename(from, to);
          trash.push(to);
        }
      }
      await this.store.mutate((data) => {
        delete data.bases[name];
        if (data.defaultBase === name) data.defaultBase = null;
        return { write: true, value: undefined };
      });
      if (isDefault) await rm(join(this.tftpRoot, 'bootcode.bin'), { force: true });
      for (const path of trash) await removeTree(path);
      await this.reload();
      return { name, removed: true };
    } finally {
      await release();
    }
  }

  // ---------------------------------------------------------------- add

  /**
   * Registers a Pi and builds its boot folder, root and exports. Transactional: everything is built
   * in temp siblings and committed with renames; on any failure every completed step is undone.
   */
  async add(request: AddRequest, options: ProgressOptions = {}): Promise<AddResult> {
    const started = Date.now();
    const serial = parseSerial(request.serial);
    const short = serial.short;
    const owner = checkOwner(request.owner);
    const name = checkHostname(request.name);
    const mac = request.mac ? normalizeMac(request.mac) : null;
    const own = request.ownFilesystem ?? false;
    this.requireRoot('add');
    await this.reload();
    if (this.data.pis[short]) throw new FleetError('PI_EXISTS', `Pi ${short} is already registered (owner ${this.data.pis[short]!.owner}, name ${this.data.pis[short]!.name})`);
    let base: StoredBase | undefined;
    if (!own) {
      if (!request.base) throw new FleetError('INVALID_REQUEST', 'a base is required unless --own-filesystem is chosen');
      base = this.data.bases[request.base];
      if (!base) {
        const known = Object.keys(this.data.bases).sort();
        throw new FleetError('BASE_NOT_FOUND', `base ${request.base} does not exist${known.length ? ` (bases: ${known.join(', ')})` : ' (run pxetools setup first)'}`);
      }
    }
    const tftpDir = join(this.tftpRoot, short);
    const nfsDir = join(this.nfsRoot, short);
    // The Pi's lock first: a second add of the same serial is told it is busy, not to remove it.
    const release = await this.lockPi(short);
    try {
      await this.settlePi(short);
      await this.reload();
      if (this.data.pis[short]) throw new FleetError('PI_EXISTS', `Pi ${short} was registered by someone else meanwhile`);
      for (const dir of [tftpDir, nfsDir]) {
        if (await exists(dir)) throw new FleetError('PI_EXISTS', `${dir} already exists but Pi ${short} is not registered; remove it with pxetools --remove ${short} or adopt it`);
      }
      return await this.addLocked({ short, full: serial.full, owner, name, mac, own, base, tftpDir, nfsDir, request, options, started });
    } finally {
      await release();
    }
  }

  private async addLocked(a: {
    short: string;
    full: string;
    owner: string;
    name: string;
    mac: string | null;
    own: boolean;
    base: StoredBase | undefined;
    tftpDir: string;
    nfsDir: string;
    request: AddRequest;
    options: ProgressOptions;
    started: number;
  }): Promise<AddResult> {
    const { short, owner, name, mac, own, base, tftpDir, nfsDir, request, options, started } = a;
    const tag = randomBytes(4).toString('hex');
    const intent: Intent = { op: 'add', serial: short, tag };
    await this.intents.record(intent);
    const tmpTftp = join(this.tftpRoot, `.${short}.tmp-${tag}`);
    const tmpNfs = join(this.nfsRoot, `.${short}.tmp-${tag}`);
    const undo: Array<() => Promise<void>> = [];
    let copyMode: AddResult['copyMode'] = 'none';
    try {
      await mkdir(this.tftpRoot, { recursive: true });
      await mkdir(this.nfsRoot, { recursive: true });

      await this.beforeStep('add:boot-files');
      // The Pi's /boot/firmware: every file it boots from, its own copy (boot-folder.ts says why).
      if (base) await copyTree(this.runner, base.bootDir, tmpTftp);
      else await mkdir(tmpTftp, { mode: 0o755 });
      const cmdline = await cmdlineFromBase(base?.bootDir ?? null, this.serverIp, nfsDir);
      await writeFile(join(tmpTftp, 'cmdline.txt'), cmdline.text);
      if (request.configTxt !== undefined) await writeFile(join(tmpTftp, 'config.txt'), normalizeConfigTxt(request.configTxt));
      await writeFile(join(tmpTftp, 'owner'), renderOwnerFile(owner));
      await writeFile(join(tmpTftp, 'name'), renderOwnerFile(name));

      await this.beforeStep('add:rootfs-copy');
      if (base) {
        copyMode = (await this.canReflink()) ? 'reflink' : 'full';
        await copyTreeWithProgress(this.runner, base.rootDir, tmpNfs, base.bytes, options.onProgress);
        await this.beforeStep('add:rootfs-tweak');
        const actions = planRootfs({
          name,
          serverIp: this.serverIp,
          bootExportPath: tftpDir,
          layout: base.layout,
          networkManager: await exists(join(tmpNfs, 'etc', 'NetworkManager')),
          dockerDisk: request.dockerDisk ?? false,
          sshUnit: await findUnit(tmpNfs, 'ssh.service'),
        });
        await applyRootfs(tmpNfs, actions);
      } else {
        await mkdir(tmpNfs, { mode: 0o755 });
      }

      const entry: RegisteredPi = {
        serial: short,
        serialFull: a.full,
        owner,
        name,
        base: base?.name ?? null,
        mac,
        ownFilesystem: own,
        addedAt: this.clock().toISOString(),
        exports: [nfsDir, tftpDir],
      };
      await this.store.mutate(async (data) => {
        if (data.pis[short]) throw new FleetError('PI_EXISTS', `Pi ${short} was registered by someone else meanwhile`);
        await this.beforeStep('add:commit-dirs');
        await rename(tmpTftp, tftpDir);
        undo.push(() => rename(tftpDir, tmpTftp));
        await rename(tmpNfs, nfsDir);
        undo.push(() => rename(nfsDir, tmpNfs));
        await this.beforeStep('add:exports');
        const clients: ExportClient[] = [{ host: this.exportsClients, options: PI_EXPORT_OPTIONS }];
        await this.exports.update((entries) => entry.exports.reduce<ExportEntry[]>((acc, path) => [...acc.filter((e) => e.path !== path), { path, clients }], entries));
        undo.push(() => this.unexport(entry.exports).then(() => undefined));
        await this.beforeStep('add:registry');
        data.pis[short] = entry;
        return { write: true, value: undefined };
      });
      this.data.pis[short] = entry;
      this.rebuildIndex();
      await this.intents.clear(intent);
      this.logger.info({ serial: short, base: entry.base, copyMode, cmdlineDropped: cmdline.dropped }, 'pi added');
      return { pi: this.toJson(entry), copyMode, cmdline: cmdline.text.trimEnd(), cmdlineDropped: cmdline.dropped, ms: Date.now() - started };
    } catch (error) {
      let undone = true;
      for (const step of undo.reverse()) {
        await step().catch((e: unknown) => {
          undone = false;
          this.logger.error({ err: e }, 'add rollback step failed');
        });
      }
      // A rollback that failed keeps the intent: the next verb on this Pi finishes undoing it.
      if (undone) await this.intents.clear(intent);
      throw error;
    } finally {
      await rm(tmpTftp, { recursive: true, force: true });
      await removeTree(tmpNfs).catch((e: unknown) => this.logger.error({ err: e, path: tmpNfs }, 'could not remove temp root'));
    }
  }

  /** The per-Pi lock every verb that changes one Pi holds (PI_BUSY at once when another has it). */
  private async lockPi(short: string): Promise<() => Promise<void>> {
    await mkdir(join(this.stateDir, 'locks'), { recursive: true });
    return acquireLock(join(this.stateDir, 'locks', `${short}.lock`), { timeoutMs: 0, what: `Pi ${short} (another add or remove of it is running)` });
  }

  /**
   * Repairs what a killed verb left for this Pi (the caller holds its lock, so no live verb owns
   * any of it): an add not yet in the registry is undone (its folders and export lines), a remove
   * is finished, and temp and trash trees of the serial are swept.
   */
  private async settlePi(short: string): Promise<void> {
    const intent = await this.intents.read(`pi-${short}`);
    const tftpDir = join(this.tftpRoot, short);
    const nfsDir = join(this.nfsRoot, short);
    const entry = (await this.store.read()).pis[short];
    if (intent?.op === 'add' && !entry) {
      this.logger.warn({ serial: short }, 'undoing an add that was interrupted');
      await this.unexport([nfsDir, tftpDir]);
      for (const dir of [tftpDir, nfsDir]) await removeTree(dir);
    } else if (intent?.op === 'remove') {
      this.logger.warn({ serial: short }, 'finishing a remove that was interrupted');
      await this.unexport(entry?.exports ?? [nfsDir, tftpDir]);
      for (const dir of [tftpDir, nfsDir]) await removeTree(dir);
      if (entry) {
        await this.store.mutate((data) => {
          const had = !!data.pis[short];
          delete data.pis[short];
          return { write: had, value: undefined };
        });
      }
    }
    for (const root of [this.tftpRoot, this.nfsRoot]) {
      for (const name of await readdir(root).catch(() => [] as string[])) {
        if (name.startsWith(`.${short}.tmp-`) || name.startsWith(`.${short}.trash-`)) await removeTree(join(root, name));
      }
    }
    if (intent) await this.intents.clear(intent);
  }

  /**
   * Repairs every Pi and setup a killed verb left half-done, skipping those another live process
   * is working on (their lock is held). Run by `open` as root: any verb, and `boot-server start`.
   */
  private async settleAll(): Promise<void> {
    for (const intent of await this.intents.pending()) {
      const release = await (intent.op === 'setup' ? this.lockSetup() : this.lockPi(intent.serial)).catch(() => undefined);
      if (!release) continue;
      try {
        if (intent.op === 'setup') await this.settleSetups();
        else await this.settlePi(intent.serial);
      } finally {
        await release();
      }
    }
  }

  // ---------------------------------------------------------------- remove / reset

  /**
   * Unexports, then deletes the Pi's folders (never following symlinks or crossing mounts) and its
   * registry entry. Idempotent: removing an unknown serial succeeds with `removed: false`.
   */
  async remove(serialInput: string): Promise<RemoveResult> {
    const short = parseSerial(serialInput).short;
    this.requireRoot('remove');
    const release = await this.lockPi(short);
    try {
      await this.settlePi(short);
      await this.reload();
      const tftpDir = join(this.tftpRoot, short);
      const nfsDir = join(this.nfsRoot, short);
      const entry = this.data.pis[short];
      const present = !!entry || (await exists(tftpDir)) || (await exists(nfsDir));
      for (const dir of [tftpDir, nfsDir]) {
        const mounts = await mountsUnder(dir);
        if (mounts.length) throw new FleetError('PI_MOUNTED', `refusing to remove ${short}: ${mounts.join(', ')} is mounted inside ${dir}; unmount it first`);
      }
      const undo: Array<() => Promise<void>> = [];
      const trash: string[] = [];
      let unexported = false;
      const intent: Intent = { op: 'remove', serial: short, tag: randomBytes(4).toString('hex') };
      if (present) await this.intents.record(intent);
      try {
        await this.beforeStep('remove:exports');
        const exportPaths = entry?.exports ?? [nfsDir, tftpDir];
        const previous = (await this.exports.read()).filter((e) => exportPaths.includes(e.path));
        unexported = await this.unexport(exportPaths);
        if (previous.length) undo.push(() => this.exports.update((entries) => [...entries.filter((e) => !exportPaths.includes(e.path)), ...previous]).then(() => undefined));
        // Move out of the way first (atomic), so a half-deleted tree is never served as a Pi's root.
        const tag = randomBytes(4).toString('hex');
        for (const dir of [tftpDir, nfsDir]) {
          if (await exists(dir)) {
            const target = join(dir, '..', `.${short}.trash-${tag}`);
            await rename(dir, target);
            trash.push(target);
            undo.push(() => rename(target, dir));
          }
        }
        await this.beforeStep('remove:registry');
        if (entry) {
          await this.store.mutate((data) => {
            const had = !!data.pis[short];
            delete data.pis[short];
            return { write: had, value: undefined };
          });
          delete this.data.pis[short];
          this.rebuildIndex();
        }
      } catch (error) {
        let undone = true;
        for (const step of undo.reverse()) {
          await step().catch((e: unknown) => {
            undone = false;
            this.logger.error({ err: e }, 'remove rollback step failed');
          });
        }
        if (undone) await this.intents.clear(intent);
        throw error;
      }
      // Committed: the Pi is gone from the registry and the exports. Deleting the moved-away trees
      // may still fail (I/O); a later remove or reset sweeps what is left.
      this.timelines.delete(short);
      await this.beforeStep('remove:delete');
      for (const dir of trash) await removeTree(dir);
      await this.sweepTrash(short);
      await this.intents.clear(intent);
      this.logger.info({ serial: short, unexported }, 'pi removed');
      return { serial: short, removed: present || unexported };
    } finally {
      await release();
    }
  }

  /**
   * Removes every Pi, every base, the boot base and our exports file: back to before setup. The
   * CLI asks for confirmation first.
   */
  async reset(): Promise<{ removed: string[]; bases: string[] }> {
    this.requireRoot('reset');
    await this.reload();
    const serials = new Set(Object.keys(this.data.pis));
    for (const name of await readdir(this.tftpRoot).catch(() => [] as string[])) if (isSerialFolderName(name)) serials.add(name);
    const removed: string[] = [];
    for (const serial of [...serials].sort()) {
      await this.remove(serial);
      removed.push(serial);
    }
    await this.sweepTrash();
    const bases = Object.keys(this.data.bases).sort();
    for (const name of bases) {
      await removeTree(join(this.nfsRoot, 'bases', name));
      await rm(join(this.stateDir, 'bases', name), { recursive: true, force: true });
    }
    await removeTree(join(this.tftpRoot, 'base'));
    await rm(join(this.tftpRoot, 'bootcode.bin'), { force: true });
    await this.exports.removeFile();
    await this.store.mutate((data) => {
      data.bases = keyedTable();
      data.defaultBase = null;
      data.pis = keyedTable();
      data.layout = CURRENT_LAYOUT;
      return { write: true, value: undefined };
    });
    this.data = emptyRegistry();
    this.rebuildIndex();
    return { removed, bases };
  }

  /**
   * Adopts an upstream pxetools installation: every `<tftpRoot>/<serial>/` with `owner` and `name`
   * files that we do not know yet becomes a registered Pi (base unknown) and gets our exports.
   * The operator's /etc/exports is never written; its lines for adopted Pis are returned so they
   * can be deleted by hand.
   */
  async adopt(options: { upstreamExports?: string } = {}): Promise<{ adopted: string[]; staleUpstreamExportLines: string[] }> {
    this.requireRoot('adopt');
    const adopted: string[] = [];
    const names = (await readdir(this.tftpRoot).catch(() => [] as string[])).filter(isSerialFolderName).sort();
    for (const short of names) {
      const dir = join(this.tftpRoot, short);
      const owner = await readFile(join(dir, 'owner'), 'utf8').catch(() => undefined);
      const name = await readFile(join(dir, 'name'), 'utf8').catch(() => undefined);
      if (owner === undefined || name === undefined) continue;
      const nfsDir = join(this.nfsRoot, short);
      const entry: RegisteredPi = {
        serial: short,
        serialFull: short,
        owner: owner.replace(/\n$/, ''),
        name: name.replace(/\n$/, ''),
        base: null,
        mac: null,
        ownFilesystem: false,
        addedAt: this.clock().toISOString(),
        exports: (await exists(nfsDir)) ? [nfsDir, dir] : [dir],
      };
      const added = await this.store.mutate(async (data) => {
        if (data.pis[short]) return { write: false, value: false };
        const clients: ExportClient[] = [{ host: this.exportsClients, options: PI_EXPORT_OPTIONS }];
        await this.exports.update((entries) => entry.exports.reduce<ExportEntry[]>((acc, path) => [...acc.filter((e) => e.path !== path), { path, clients }], entries));
        data.pis[short] = entry;
        return { write: true, value: true };
      });
      if (added.value) adopted.push(short);
    }
    await this.reload();
    const upstream = await readFile(options.upstreamExports ?? '/etc/exports', 'utf8').catch(() => '');
    const staleUpstreamExportLines = upstream.split('\n').filter((line) => adopted.some((s) => line.startsWith(join(this.nfsRoot, s))));
    return { adopted, staleUpstreamExportLines };
  }

  // ---------------------------------------------------------------- internals

  /** Deletes `.<serial>.trash-*` leftovers of interrupted removes (all serials when none given). */
  private async sweepTrash(serial?: string): Promise<void> {
    for (const root of [this.tftpRoot, this.nfsRoot]) {
      for (const name of await readdir(root).catch(() => [] as string[])) {
        const match = /^\.([0-9a-f]{8})\.trash-[0-9a-f]+$/.exec(name);
        if (match && (serial === undefined || match[1] === serial)) await removeTree(join(root, name));
      }
    }
  }

  /** A fact's time as ISO text; a missing or invalid time means now (facts never throw). */
  private isoTime(at: Date | string | number | undefined): string {
    const date = at === undefined ? this.clock() : new Date(at);
    return Number.isNaN(date.getTime()) ? this.clock().toISOString() : date.toISOString();
  }

  private requireRoot(verb: string): void {
    if (!this.isRoot()) throw new FleetError('NOT_ROOT', `${verb} needs root privileges (owners, device nodes and exportfs); run with sudo or as root`);
  }

  private async unexport(paths: readonly string[]): Promise<boolean> {
    let found = false;
    await this.exports.update((entries) => {
      const kept = entries.filter((e) => !paths.includes(e.path));
      found = kept.length !== entries.length;
      return kept;
    });
    return found;
  }

  private canReflink(): Promise<boolean> {
    this.reflinkProbe ??= (async () => {
      const probe = join(this.nfsRoot, `.reflink-probe-${randomBytes(4).toString('hex')}`);
      try {
        await writeFile(probe, 'probe');
        await this.runner('cp', ['--reflink=always', probe, `${probe}.clone`]);
        return true;
      } catch {
        return false;
      } finally {
        await rm(probe, { force: true });
        await rm(`${probe}.clone`, { force: true });
      }
    })();
    return this.reflinkProbe;
  }

  private rebuildIndex(): void {
    const macs = new Map<string, string>();
    for (const entry of Object.values(this.data.pis)) {
      macs.set(derivedMacFromSerial(entry.serial), entry.serial);
    }
    for (const record of this.seen.values()) {
      if (record.serial && this.data.pis[record.serial]) macs.set(record.mac, record.serial);
    }
    for (const entry of Object.values(this.data.pis)) if (entry.mac) macs.set(entry.mac, entry.serial);
    this.registeredMacs = macs;
    // Who counts as a stranger changed: rebuild both bounded pools (oldest first).
    this.strangerMacs.clear();
    for (const record of [...this.seen.values()].sort((a, b) => a.lastSeen.localeCompare(b.lastSeen))) this.keepOrBound(record);
    const strangers = [...this.timelines.keys()].filter((serial) => !this.data.pis[serial]);
    for (const serial of this.timelines.keys()) if (this.data.pis[serial]) this.strangerTimelines.delete(serial);
    for (const serial of strangers) if (!this.strangerTimelines.has(serial)) for (const evicted of this.strangerTimelines.touch(serial)) this.timelines.delete(evicted);
  }

  private async loadSeen(): Promise<void> {
    try {
      const file = JSON.parse(await readFile(join(this.stateDir, 'seen.json'), 'utf8')) as SeenFile;
      this.seen = new Map(Object.entries(file.byMac ?? {}));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ err: error }, 'seen.json unreadable; starting with no learned facts');
    }
    this.rebuildIndex();
  }

  /** The freshest learned record for a serial: by serial, else by its configured MAC. */
  private learned(entry: RegisteredPi): SeenRecord | undefined {
    let best: SeenRecord | undefined;
    for (const record of this.seen.values()) {
      if (record.serial === entry.serial || (entry.mac && record.mac === entry.mac)) {
        if (!best || record.lastSeen > best.lastSeen) best = record;
      }
    }
    return best;
  }

  private toJson(entry: RegisteredPi): PiJson {
    const seen = this.learned(entry);
    const macSource = seen ? 'learned' : entry.mac ? 'configured' : 'derived';
    return {
      serial: entry.serial,
      serialFull: entry.serialFull,
      owner: entry.owner,
      name: entry.name,
      model: seen?.model ?? null,
      base: entry.base,
      mac: seen?.mac ?? entry.mac ?? derivedMacFromSerial(entry.serial),
      macDerived: macSource === 'derived',
      macSource,
      ip: seen?.ip ?? null,
      lastSeen: seen?.lastSeen ?? null,
      ownFilesystem: entry.ownFilesystem,
      addedAt: entry.addedAt,
      tftpDir: join(this.tftpRoot, entry.serial),
      nfsDir: join(this.nfsRoot, entry.serial),
    };
  }
}

/** The unit file of a base (merged /usr or not), as the absolute path the Pi will see. */
async function findUnit(root: string, unit: string): Promise<string | null> {
  for (const dir of ['usr/lib/systemd/system', 'lib/systemd/system']) {
    const info = await lstat(join(root, dir, unit)).catch(() => undefined);
    if (info?.isFile()) return `/${dir}/${unit}`;
  }
  return null;
}

function safeShort(serial: string): string | undefined {
  try {
    return parseSerial(serial).short;
  } catch {
    return undefined;
  }
}

function safeMac(mac: string): string | undefined {
  try {
    return normalizeMac(mac);
  } catch {
    return undefined;
  }
}


function describeSource(source: SetupSource): string {
  if (source.kind === 'image') return `image ${source.image}`;
  if (source.kind === 'tarballs') return `tarballs ${source.boot} ${source.root}`;
  return `dirs ${source.boot} ${source.root}`;
}

type SetupSource = SetupRequest['source'];

/** `cp -a --reflink=auto src/. dest`: keeps owners, modes, links, device nodes and xattrs. */
export async function copyTree(runner: CommandRunner, source: string, dest: string): Promise<void> {
  try {
    await runner('cp', ['-a', '--reflink=auto', '--', `${source}/.`, dest]);
  } catch (error) {
    throw new FleetError('COPY_FAILED', `copying ${source} to ${dest} failed: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * copyTree plus progress: cp gives none, so progress is the growth of the target filesystem's
 * used space against the base's known size (with reflink it jumps to the end at once).
 */
export async function copyTreeWithProgress(runner: CommandRunner, source: string, dest: string, expectedBytes: number, onProgress?: (p: { phase: 'copy'; done: number; total: number }) => void): Promise<void> {
  if (!onProgress) return copyTree(runner, source, dest);
  const start = await usedBytes(join(dest, '..'));
  const timer = setInterval(() => {
    void usedBytes(join(dest, '..'))
      .then((used) => onProgress({ phase: 'copy', done: Math.min(expectedBytes, Math.max(0, used - start)), total: expectedBytes }))
      .catch(() => undefined);
  }, 250);
  try {
    await copyTree(runner, source, dest);
    onProgress({ phase: 'copy', done: expectedBytes, total: expectedBytes });
  } finally {
    clearInterval(timer);
  }
}
