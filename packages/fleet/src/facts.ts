import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic, type CommandRunner, type Logger } from '@iot-tofu/host-io';
import { derivedMacFromSerial, normalizeMac, parseSerial } from '@iot-tofu/rpi';
import { LruKeys } from './lru-keys.js';
import type { RegisteredPi } from './registry.js';
import type { DiscoveredPi, SeenFact, TimelineEvent } from './types.js';

/**
 * What the fleet learns from traffic: MAC/IP/model per MAC (seen.json), boot timelines per serial,
 * and the MAC → serial index the per-packet checks use. Registered Pis are always kept; strangers
 * (serials and MACs seen on the wire, possibly spoofed) share bounded pools.
 */

/** What seen.json keeps per MAC: the same fields `discovered()` shows. */
export type SeenRecord = DiscoveredPi;

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

export function safeShort(serial: string): string | undefined {
  try {
    return parseSerial(serial).short;
  } catch {
    return undefined;
  }
}

export function safeMac(mac: string): string | undefined {
  try {
    return normalizeMac(mac);
  } catch {
    return undefined;
  }
}

export interface LearnedFactsOptions {
  stateDir: string;
  runner: CommandRunner;
  logger: Logger;
  clock: () => Date;
  timelineLimit: number;
  unregisteredLimit: number;
  seenFlushMs: number;
  /** The registered Pis right now (the registry in memory). */
  pis: () => Readonly<Record<string, RegisteredPi>>;
}

export class LearnedFacts {
  private registeredMacs = new Map<string, string>();
  private seen = new Map<string, SeenRecord>();
  private seenDirty = false;
  /** The write of seen.json under way: writes run one after another, so the newest lands last. */
  private writing: Promise<void> = Promise.resolve();
  private seenTimer: NodeJS.Timeout | undefined;
  private readonly timelines = new Map<string, TimelineEvent[]>();
  /** Unregistered serials with a timeline, least recently recorded first (bounded). */
  private readonly strangerTimelines: LruKeys;
  /** MACs of learned records that belong to no registered Pi, least recently seen first (bounded). */
  private readonly strangerMacs: LruKeys;
  private closed = false;

  constructor(private readonly o: LearnedFactsOptions) {
    this.strangerTimelines = new LruKeys(o.unregisteredLimit);
    this.strangerMacs = new LruKeys(o.unregisteredLimit);
  }

  hasMac(mac: string): boolean {
    return this.registeredMacs.has(mac);
  }

  serialForMac(mac: string): string | undefined {
    return this.registeredMacs.get(mac);
  }

  /** Pis seen on the network whose serial (or MAC) is not registered. */
  discovered(): DiscoveredPi[] {
    const pis = this.o.pis();
    const out: DiscoveredPi[] = [];
    for (const record of this.seen.values()) {
      if (record.serial ? pis[record.serial] : this.registeredMacs.has(record.mac)) continue;
      out.push({ ...record });
    }
    return out.sort((a, b) => (a.serial ?? `~${a.mac}`).localeCompare(b.serial ?? `~${b.mac}`));
  }

  timeline(serial: string): TimelineEvent[] {
    const short = safeShort(serial);
    return short ? [...(this.timelines.get(short) ?? [])] : [];
  }

  forgetTimeline(short: string): void {
    this.timelines.delete(short);
  }

  /** A fact learned from DHCP/TFTP traffic. Cheap: memory now, seen.json at most every seenFlushMs. */
  recordSeen(fact: SeenFact): void {
    const mac = safeMac(fact.mac);
    if (!mac) return;
    const at = this.isoTime(fact.at);
    const previous = this.seen.get(mac);
    const serial =
      (fact.serial !== undefined ? safeShort(fact.serial) : undefined) ?? previous?.serial ?? this.registeredMacs.get(mac) ?? null;
    const record: SeenRecord = {
      serial,
      mac,
      ip: fact.ip ?? previous?.ip ?? null,
      model: fact.model ?? previous?.model ?? null,
      firstSeen: previous?.firstSeen ?? at,
      lastSeen: previous && previous.lastSeen > at ? previous.lastSeen : at,
    };
    this.seen.set(mac, record);
    if (serial && this.o.pis()[serial]) this.registeredMacs.set(mac, serial);
    this.keepOrBound(record);
    this.seenDirty = true;
    if (!this.seenTimer && !this.closed) {
      this.seenTimer = setTimeout(() => {
        this.seenTimer = undefined;
        void this.flush().catch((error: unknown) => this.o.logger.warn({ err: error }, 'could not save learned facts'));
      }, this.o.seenFlushMs);
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
      ({ stdout } = await this.o.runner('ip', ['-j', 'neigh', 'show']));
    } catch (error) {
      this.o.logger.debug({ err: error }, 'ip neigh failed');
      return 0;
    }
    let learned = 0;
    const at = this.o.clock().toISOString();
    for (const { ip, mac } of parseNeighbours(stdout)) {
      const serial = this.registeredMacs.get(mac);
      if (!serial) continue;
      const previous = this.seen.get(mac);
      if (previous?.ip === ip) continue;
      this.seen.set(mac, {
        serial,
        mac,
        ip,
        model: previous?.model ?? null,
        firstSeen: previous?.firstSeen ?? at,
        lastSeen: previous?.lastSeen ?? at,
      });
      learned++;
    }
    if (learned && (options.persist ?? true)) {
      this.seenDirty = true;
      await this.flush();
    }
    return learned;
  }

  /** Appends to a Pi's boot timeline, keeping the last `timelineLimit` events. */
  recordTimeline(serial: string, event: { type: string; at?: string | Date | number; [key: string]: unknown }): void {
    const short = safeShort(serial);
    if (!short) return;
    const list = this.timelines.get(short) ?? [];
    list.push({ ...event, type: event.type, at: this.isoTime(event.at) });
    if (list.length > this.o.timelineLimit) list.splice(0, list.length - this.o.timelineLimit);
    this.timelines.set(short, list);
    if (this.o.pis()[short]) this.strangerTimelines.delete(short);
    else for (const evicted of this.strangerTimelines.touch(short)) this.timelines.delete(evicted);
  }

  /** Registered Pis keep their learned record; strangers share a bounded, least-recently-seen-first pool. */
  private keepOrBound(record: SeenRecord): void {
    const registered = record.serial ? !!this.o.pis()[record.serial] : false;
    if (registered || this.registeredMacs.has(record.mac)) this.strangerMacs.delete(record.mac);
    else for (const evicted of this.strangerMacs.touch(record.mac)) this.seen.delete(evicted);
  }

  /**
   * Writes learned facts now (atomic); called by the debounce timer and close(). Two writes at once
   * could rename in either order (the timer's older snapshot over close()'s newer one): each waits
   * for the one before and takes its snapshot when it starts.
   */
  flush(): Promise<void> {
    const write = this.writing.then(() => this.writeSeen());
    this.writing = write.catch(() => undefined);
    return write;
  }

  private async writeSeen(): Promise<void> {
    if (!this.seenDirty) return;
    this.seenDirty = false;
    const file: SeenFile = { version: 1, byMac: Object.fromEntries(this.seen) };
    try {
      await mkdir(this.o.stateDir, { recursive: true });
      await writeFileAtomic(join(this.o.stateDir, 'seen.json'), `${JSON.stringify(file)}\n`);
    } catch (error) {
      this.seenDirty = true; // the next flush tries again
      throw error;
    }
  }

  /** Stops the debounce timer and writes what is pending. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.seenTimer) clearTimeout(this.seenTimer);
    this.seenTimer = undefined;
    await this.flush();
  }

  async load(): Promise<void> {
    try {
      const file = JSON.parse(await readFile(join(this.o.stateDir, 'seen.json'), 'utf8')) as SeenFile;
      this.seen = new Map(Object.entries(file.byMac ?? {}));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        this.o.logger.warn({ err: error }, 'seen.json unreadable; starting with no learned facts');
    }
    this.rebuildIndex();
  }

  /** Rebuilds the MAC index and the stranger pools after the registered Pis changed. */
  rebuildIndex(): void {
    const pis = this.o.pis();
    const macs = new Map<string, string>();
    for (const entry of Object.values(pis)) {
      macs.set(derivedMacFromSerial(entry.serial), entry.serial);
    }
    for (const record of this.seen.values()) {
      if (record.serial && pis[record.serial]) macs.set(record.mac, record.serial);
    }
    for (const entry of Object.values(pis)) if (entry.mac) macs.set(entry.mac, entry.serial);
    this.registeredMacs = macs;
    // Who counts as a stranger changed: rebuild both bounded pools (oldest first).
    this.strangerMacs.clear();
    for (const record of [...this.seen.values()].sort((a, b) => a.lastSeen.localeCompare(b.lastSeen))) this.keepOrBound(record);
    const strangers = [...this.timelines.keys()].filter((serial) => !pis[serial]);
    for (const serial of this.timelines.keys()) if (pis[serial]) this.strangerTimelines.delete(serial);
    for (const serial of strangers)
      if (!this.strangerTimelines.has(serial)) for (const evicted of this.strangerTimelines.touch(serial)) this.timelines.delete(evicted);
  }

  /** The freshest learned record for a serial: by serial, else by its configured MAC. */
  learned(entry: RegisteredPi): SeenRecord | undefined {
    let best: SeenRecord | undefined;
    for (const record of this.seen.values()) {
      if (record.serial === entry.serial || (entry.mac && record.mac === entry.mac)) {
        if (!best || record.lastSeen > best.lastSeen) best = record;
      }
    }
    return best;
  }

  /** A fact's time as ISO text; a missing or invalid time means now (facts never throw). */
  private isoTime(at: Date | string | number | undefined): string {
    const date = at === undefined ? this.o.clock() : new Date(at);
    return Number.isNaN(date.getTime()) ? this.o.clock().toISOString() : date.toISOString();
  }
}
