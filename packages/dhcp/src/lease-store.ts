import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IotTofuError } from '@iot-tofu/errors';
import { writeFileAtomic } from '@iot-tofu/host-io';
import { isIpv4 } from './codec.js';
import type { AddressState, Lease, LeaseState, Quarantine } from './lease-pool.js';

/** The lease file is unreadable or not ours: full mode refuses to start rather than hand out addresses twice. */
export class LeaseFileError extends IotTofuError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('DHCP_LEASE_FILE_INVALID', `${path}: ${message}`, options);
    this.path = path;
  }
}

export interface LeaseFileContents {
  leases: Lease[];
  quarantines: Quarantine[];
}

/** Journal entries since the snapshot before a compaction rewrites the snapshot (and at least twice its records). */
export const MIN_JOURNAL_ENTRIES_BEFORE_COMPACTION = 1000;

/** File name of the lease database inside the state dir. */
export const LEASE_FILE_NAME = 'dhcp-leases.json';

const STATES: readonly LeaseState[] = ['offered', 'bound', 'released'];
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The leases of full-DHCP mode on disk, in the state dir: a snapshot (`dhcp-leases.json`, replaced
 * atomically: temp file, fsync, rename, fsync of the directory) plus a journal
 * (`dhcp-leases.journal`, one JSON line per changed address, appended and fdatasync'ed before the
 * ACKs it covers leave). A write costs the changes, not the table; once the journal outgrows the
 * table, a compaction writes a new snapshot and starts a new journal. Both carry a generation: a
 * journal is replayed only over the snapshot of its generation, so a crash between the two steps
 * of a compaction never replays old entries over a newer snapshot. A torn last line (crash
 * mid-append) is ignored: its ACKs never left. Times are ISO strings for people reading the files.
 */
export class LeaseStore {
  readonly journalPath: string;
  private generation = 0;
  /** Journal entries since the last snapshot (decides when to compact). */
  private journalEntries = 0;
  /** The journal on disk belongs to an older snapshot: never append to it. */
  private stale = false;

  constructor(readonly path: string) {
    this.journalPath = path.replace(/\.json$/, '') + '.journal';
  }

  static inStateDir(stateDir: string): LeaseStore {
    return new LeaseStore(join(stateDir, LEASE_FILE_NAME));
  }

  /** Snapshot + journal; empty when neither exists; LeaseFileError when one is not ours. */
  async load(): Promise<LeaseFileContents> {
    const snapshotText = await readOptional(this.path);
    const snapshot = snapshotText === undefined ? { leases: [], quarantines: [], generation: 0 } : parseSnapshot(snapshotText, this.path);
    this.generation = snapshot.generation;
    const journalText = await readOptional(this.journalPath);
    const parsed = journalText === undefined ? [] : parseJournal(journalText, this.journalPath, snapshot.generation);
    // A stale journal (crash inside a compaction) is already in the snapshot: the next write replaces it.
    this.stale = parsed === null;
    const entries = parsed ?? [];
    this.journalEntries = entries.length;
    if (entries.length === 0) return { leases: snapshot.leases, quarantines: snapshot.quarantines };
    const leases = new Map(snapshot.leases.map((l) => [l.address, l]));
    const quarantines = new Map(snapshot.quarantines.map((q) => [q.address, q]));
    for (const entry of entries) {
      if (entry.lease) leases.set(entry.address, entry.lease);
      else leases.delete(entry.address);
      if (entry.quarantine) quarantines.set(entry.address, entry.quarantine);
      else quarantines.delete(entry.address);
    }
    return { leases: [...leases.values()], quarantines: [...quarantines.values()] };
  }

  /** A new snapshot of everything and an empty journal of the next generation (compaction). */
  async save(contents: LeaseFileContents): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const generation = this.generation + 1;
    await writeFileAtomic(this.path, renderLeaseFile(contents, generation));
    this.generation = generation;
    await writeFileAtomic(this.journalPath, journalHeader(generation));
    this.journalEntries = 0;
    this.stale = false;
  }

  /** Appends the changed addresses to the journal and syncs it (one fdatasync per batch). */
  async append(changes: readonly AddressState[]): Promise<void> {
    if (changes.length === 0) return;
    if (this.stale) throw new LeaseFileError(this.journalPath, 'journal of an older snapshot: compact (save) first');
    await mkdir(dirname(this.path), { recursive: true });
    const handle = await open(this.journalPath, 'a', 0o644);
    try {
      const { size } = await handle.stat();
      const text = changes.map((change) => JSON.stringify(renderState(change))).join('\n');
      await handle.writeFile(`${size === 0 ? journalHeader(this.generation) : ''}${text}\n`);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    this.journalEntries += changes.length;
  }

  /** Whether the journal is long enough that the next write should be a compaction. */
  shouldCompact(records: number): boolean {
    return this.stale || this.journalEntries >= Math.max(MIN_JOURNAL_ENTRIES_BEFORE_COMPACTION, 2 * records);
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LeaseFileError(path, `cannot read: ${(error as Error).message}`, { cause: error });
  }
}

function journalHeader(generation: number): string {
  return `${JSON.stringify({ journal: 'iot-tofu dhcp leases', version: 1, generation })}\n`;
}

function renderState(state: AddressState): object {
  return {
    address: state.address,
    lease: state.lease ? { ...state.lease, expiresAt: new Date(state.lease.expiresAt).toISOString() } : null,
    quarantine: state.quarantine ? { ...state.quarantine, until: new Date(state.quarantine.until).toISOString() } : null,
  };
}

/** Journal entries of `generation`; null when the journal belongs to another snapshot (stale). */
export function parseJournal(text: string, path: string, generation: number): AddressState[] | null {
  // The piece after the last newline is empty, or a line torn by a crash mid-append: dropped.
  const complete = text.split('\n').slice(0, -1);
  if (complete.length === 0) return [];
  let header: { journal?: unknown; generation?: unknown };
  try {
    header = JSON.parse(complete[0]!);
  } catch {
    throw new LeaseFileError(path, 'line 1 is not a journal header; move the file aside to start from the snapshot alone');
  }
  if (header.journal !== 'iot-tofu dhcp leases' || typeof header.generation !== 'number')
    throw new LeaseFileError(path, 'not a lease journal');
  if (header.generation !== generation) return null;
  return complete.slice(1).map((line, index) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new LeaseFileError(path, `line ${index + 2} is not JSON`);
    }
    if (typeof entry.address !== 'string' || !isIpv4(entry.address)) throw new LeaseFileError(path, `line ${index + 2}: no address`);
    const state: AddressState = { address: entry.address };
    if (entry.lease) state.lease = parseLease(entry.lease, path, `line ${index + 2}`);
    if (entry.quarantine) state.quarantine = parseQuarantine(entry.quarantine, path, `line ${index + 2}`);
    return state;
  });
}

export function renderLeaseFile(contents: LeaseFileContents, generation = 0): string {
  return `${JSON.stringify(
    {
      version: 1,
      generation,
      leases: contents.leases.map((l) => ({ ...l, expiresAt: new Date(l.expiresAt).toISOString() })),
      quarantines: contents.quarantines.map((q) => ({ ...q, until: new Date(q.until).toISOString() })),
    },
    null,
    1,
  )}\n`;
}

/** Pure parser of the lease file (snapshot); every defect names the entry. */
export function parseLeaseFile(text: string, path = 'lease file'): LeaseFileContents {
  const { leases, quarantines } = parseSnapshot(text, path);
  return { leases, quarantines };
}

function parseSnapshot(text: string, path: string): LeaseFileContents & { generation: number } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new LeaseFileError(path, `not JSON (${(error as Error).message}); move it aside to start with an empty table`, { cause: error });
  }
  if (typeof data !== 'object' || data === null || (data as { version?: unknown }).version !== 1) {
    throw new LeaseFileError(path, 'not a version 1 lease file');
  }
  const { leases, quarantines } = data as { leases?: unknown; quarantines?: unknown };
  if (!Array.isArray(leases) || !(quarantines === undefined || Array.isArray(quarantines)))
    throw new LeaseFileError(path, '"leases" must be a list');
  const generation = (data as { generation?: unknown }).generation;
  const out: LeaseFileContents & { generation: number } = {
    leases: [],
    quarantines: [],
    generation: typeof generation === 'number' ? generation : 0,
  };
  for (const [index, entry] of (leases as unknown[]).entries()) out.leases.push(parseLease(entry, path, `leases[${index}]`));
  for (const [index, entry] of ((quarantines ?? []) as unknown[]).entries()) {
    out.quarantines.push(parseQuarantine(entry, path, `quarantines[${index}]`));
  }
  return out;
}

function parseLease(entry: unknown, path: string, where: string): Lease {
  const e = entry as Record<string, unknown>;
  const expiresAt = typeof e?.expiresAt === 'string' ? Date.parse(e.expiresAt) : NaN;
  if (
    typeof e?.address !== 'string' ||
    !isIpv4(e.address) ||
    typeof e.mac !== 'string' ||
    !MAC.test(e.mac) ||
    !STATES.includes(e.state as LeaseState) ||
    Number.isNaN(expiresAt)
  ) {
    throw new LeaseFileError(path, `${where} is not a lease (${JSON.stringify(entry)})`);
  }
  const lease: Lease = { address: e.address, mac: e.mac, state: e.state as LeaseState, expiresAt };
  for (const key of ['clientId', 'hostname', 'serial'] as const) if (typeof e[key] === 'string') lease[key] = e[key] as string;
  return lease;
}

function parseQuarantine(entry: unknown, path: string, where: string): Quarantine {
  const e = entry as Record<string, unknown>;
  const until = typeof e?.until === 'string' ? Date.parse(e.until) : NaN;
  if (typeof e?.address !== 'string' || !isIpv4(e.address) || (e.reason !== 'declined' && e.reason !== 'conflict') || Number.isNaN(until)) {
    throw new LeaseFileError(path, `${where} is not a quarantine entry (${JSON.stringify(entry)})`);
  }
  const q: Quarantine = { address: e.address, until, reason: e.reason };
  if (typeof e.mac === 'string') q.mac = e.mac;
  return q;
}

/**
 * Group commit: `flush()` resolves once a write that *started after the call* has finished, so an
 * ACK sent after it is on disk; calls that arrive during a write share the next one (200 clients
 * ACKed at once cost a handful of fsyncs, not 200).
 */
export class CoalescingWriter {
  private running = false;
  private queued: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } | undefined;

  constructor(private readonly write: () => Promise<void>) {}

  flush(): Promise<void> {
    const waiting = this.queued;
    if (waiting) return waiting.promise;
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.queued = { promise, resolve, reject };
    if (!this.running) this.kick();
    return promise;
  }

  private kick(): void {
    const batch = this.queued;
    if (!batch) return;
    this.queued = undefined;
    this.running = true;
    let result: Promise<void>;
    try {
      result = this.write();
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(batch.resolve, batch.reject).finally(() => {
      this.running = false;
      this.kick();
    });
  }
}
