import { mkdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { acquireLock, childrenDieWithUs, execFileRunner, silentLogger, type CommandRunner, type Logger } from '@iot-tofu/host-io';
import { ManagedExports, type ExportClient, type ExportEntry } from '@iot-tofu/nfs-server-lite';
import { derivedMacFromSerial } from '@iot-tofu/rpi';
import { FleetError } from './errors.js';
import { LearnedFacts } from './facts.js';
import { IntentLog } from './intents.js';
import { defaultExportsClients } from './net.js';
import { RegistryStore, emptyRegistry, type RegisteredPi, type RegistryData } from './registry.js';
import type { FleetOptions, FleetStep, PiJson, RegistryChange } from './types.js';

/** Options every Pi export gets: the root must be writable as root (no_root_squash), synchronous. */
export const PI_EXPORT_OPTIONS = ['rw', 'sync', 'no_subtree_check', 'no_root_squash'];

/**
 * What every verb shares: the roots, the injected I/O, the registry (on disk and in memory), the
 * intent log, the locks and the learned facts. The verbs (setup.ts, pi-add.ts, pi-remove.ts,
 * settle.ts, reset.ts, adopt.ts) are functions of it; `Fleet` (fleet.ts) is the public facade.
 */
export class FleetCore {
  readonly tftpRoot: string;
  readonly nfsRoot: string;
  readonly stateDir: string;
  readonly serverIp: string;
  readonly exportsClients: string;
  readonly exports: ManagedExports;
  readonly runner: CommandRunner;
  readonly logger: Logger;
  readonly clock: () => Date;
  readonly isRoot: () => boolean;
  readonly beforeStep: (step: FleetStep) => void | Promise<void>;
  readonly store: RegistryStore;
  readonly intents: IntentLog;
  readonly facts: LearnedFacts;
  /** The default docker disk size for add when the request does not say ('0' = none). */
  readonly dockerDiskDefault: string;
  /** The registry as last read (reload) or written by this process. */
  data: RegistryData = emptyRegistry();
  private reflinkProbe: Promise<boolean> | undefined;

  constructor(options: FleetOptions) {
    this.tftpRoot = options.tftpRoot;
    this.nfsRoot = options.nfsRoot;
    this.stateDir = options.stateDir;
    this.serverIp = options.serverIp;
    this.exportsClients = options.exportsClients ?? defaultExportsClients(options.serverIp);
    this.runner = options.runner ?? childrenDieWithUs(execFileRunner);
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? (() => new Date());
    this.isRoot = options.isRoot ?? (() => process.geteuid?.() === 0);
    this.beforeStep = options.beforeStep ?? (() => undefined);
    this.dockerDiskDefault = options.dockerDiskDefault ?? '0';
    this.store = new RegistryStore(options.stateDir);
    this.intents = new IntentLog(join(options.stateDir, 'intents'));
    this.exports = new ManagedExports({
      file: options.exportsFile ?? '/etc/exports.d/iot-tofu.exports',
      runner: this.runner,
      logger: this.logger,
      clock: this.clock,
    });
    this.facts = new LearnedFacts({
      stateDir: options.stateDir,
      runner: this.runner,
      logger: this.logger,
      clock: this.clock,
      timelineLimit: options.timelineLimit ?? 100,
      unregisteredLimit: options.unregisteredLimit ?? 256,
      seenFlushMs: options.seenFlushMs ?? 2000,
      pis: () => this.data.pis,
    });
  }

  /** Re-reads registry.json (another process, e.g. the CLI, may have changed it). */
  async reload(): Promise<RegistryChange> {
    const before = this.data;
    this.data = await this.store.read();
    this.facts.rebuildIndex();
    const beforeKeys = new Set(Object.keys(before.pis));
    const afterKeys = new Set(Object.keys(this.data.pis));
    return {
      added: [...afterKeys].filter((k) => !beforeKeys.has(k)).sort(),
      removed: [...beforeKeys].filter((k) => !afterKeys.has(k)).sort(),
      changed: [...afterKeys].filter((k) => beforeKeys.has(k) && JSON.stringify(before.pis[k]) !== JSON.stringify(this.data.pis[k])).sort(),
    };
  }

  requireRoot(verb: string): void {
    if (!this.isRoot())
      throw new FleetError('NOT_ROOT', `${verb} needs root privileges (owners, device nodes and exportfs); run with sudo or as root`);
  }

  /** The per-Pi lock every verb that changes one Pi holds (PI_BUSY at once when another has it). */
  async lockPi(short: string): Promise<() => Promise<void>> {
    await mkdir(join(this.stateDir, 'locks'), { recursive: true });
    return acquireLock(join(this.stateDir, 'locks', `${short}.lock`), {
      timeoutMs: 0,
      what: `Pi ${short} (another add or remove of it is running)`,
      code: 'PI_BUSY',
    });
  }

  /** The lock setup and remove-base hold: they share `<tftpRoot>/base` and the temp names. */
  async lockSetup(): Promise<() => Promise<void>> {
    await mkdir(join(this.stateDir, 'locks'), { recursive: true });
    return acquireLock(join(this.stateDir, 'locks', 'setup.lock'), {
      timeoutMs: 0,
      what: 'setup (another setup or remove-base is running)',
      code: 'LOCKED',
    });
  }

  /** Adds (or replaces) export lines for `paths` to the region's clients. */
  async export(paths: readonly string[]): Promise<void> {
    const clients: ExportClient[] = [{ host: this.exportsClients, options: PI_EXPORT_OPTIONS }];
    await this.exports.update((entries) =>
      paths.reduce<ExportEntry[]>((acc, path) => [...acc.filter((e) => e.path !== path), { path, clients }], entries),
    );
  }

  async unexport(paths: readonly string[]): Promise<boolean> {
    let found = false;
    await this.exports.update((entries) => {
      const kept = entries.filter((e) => !paths.includes(e.path));
      found = kept.length !== entries.length;
      return kept;
    });
    return found;
  }

  canReflink(): Promise<boolean> {
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

  toJson(entry: RegisteredPi): PiJson {
    const seen = this.facts.learned(entry);
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
      ip: seen?.ip ?? entry.staticIp ?? null,
      staticIp: entry.staticIp ?? null,
      lastSeen: seen?.lastSeen ?? null,
      ownFilesystem: entry.ownFilesystem,
      addedAt: entry.addedAt,
      tftpDir: join(this.tftpRoot, entry.serial),
      nfsDir: join(this.nfsRoot, entry.serial),
      dockerDisk: entry.dockerDisk
        ? { path: join(this.nfsRoot, entry.serial, entry.dockerDisk.path), bytes: entry.dockerDisk.bytes }
        : null,
      firstLogin: entry.firstLogin ?? null,
    };
  }
}
