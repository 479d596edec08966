import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IotTofuError } from '@iot-tofu/errors';
import { isIpv4 } from './codec.js';
import type { Lease, LeaseState, Quarantine } from './lease-pool.js';

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

/** File name of the lease database inside the state dir. */
export const LEASE_FILE_NAME = 'dhcp-leases.json';

const STATES: readonly LeaseState[] = ['offered', 'bound', 'released'];
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The leases of full-DHCP mode on disk: one JSON file in the state dir, replaced atomically (temp
 * file in the same directory, fsync, rename, fsync of the directory), so a crash leaves the old or
 * the new table, never half of one. Times are ISO strings for people reading the file.
 */
export class LeaseStore {
  constructor(readonly path: string) {}

  static inStateDir(stateDir: string): LeaseStore {
    return new LeaseStore(join(stateDir, LEASE_FILE_NAME));
  }

  /** Empty when the file does not exist; LeaseFileError when it exists but is not a lease file. */
  async load(): Promise<LeaseFileContents> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { leases: [], quarantines: [] };
      throw new LeaseFileError(this.path, `cannot read: ${(error as Error).message}`, { cause: error });
    }
    return parseLeaseFile(text, this.path);
  }

  async save(contents: LeaseFileContents): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    await writeAtomic(this.path, renderLeaseFile(contents));
  }
}

export function renderLeaseFile(contents: LeaseFileContents): string {
  return `${JSON.stringify(
    {
      version: 1,
      leases: contents.leases.map((l) => ({ ...l, expiresAt: new Date(l.expiresAt).toISOString() })),
      quarantines: contents.quarantines.map((q) => ({ ...q, until: new Date(q.until).toISOString() })),
    },
    null,
    1,
  )}\n`;
}

/** Pure parser of the lease file; every defect names the entry. */
export function parseLeaseFile(text: string, path = 'lease file'): LeaseFileContents {
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
  if (!Array.isArray(leases) || !(quarantines === undefined || Array.isArray(quarantines))) throw new LeaseFileError(path, '"leases" must be a list');
  const out: LeaseFileContents = { leases: [], quarantines: [] };
  leases.forEach((entry: unknown, index) => {
    const e = entry as Record<string, unknown>;
    const expiresAt = typeof e?.expiresAt === 'string' ? Date.parse(e.expiresAt) : NaN;
    if (typeof e?.address !== 'string' || !isIpv4(e.address) || typeof e.mac !== 'string' || !MAC.test(e.mac) || !STATES.includes(e.state as LeaseState) || Number.isNaN(expiresAt)) {
      throw new LeaseFileError(path, `leases[${index}] is not a lease (${JSON.stringify(entry)})`);
    }
    const lease: Lease = { address: e.address, mac: e.mac, state: e.state as LeaseState, expiresAt };
    for (const key of ['clientId', 'hostname', 'serial'] as const) if (typeof e[key] === 'string') lease[key] = e[key] as string;
    out.leases.push(lease);
  });
  (quarantines ?? []).forEach((entry: unknown, index: number) => {
    const e = entry as Record<string, unknown>;
    const until = typeof e?.until === 'string' ? Date.parse(e.until) : NaN;
    if (typeof e?.address !== 'string' || !isIpv4(e.address) || (e.reason !== 'declined' && e.reason !== 'conflict') || Number.isNaN(until)) {
      throw new LeaseFileError(path, `quarantines[${index}] is not a quarantine entry (${JSON.stringify(entry)})`);
    }
    const q: Quarantine = { address: e.address, until, reason: e.reason };
    if (typeof e.mac === 'string') q.mac = e.mac;
    out.quarantines.push(q);
  });
  return out;
}

async function writeAtomic(path: string, data: string): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const dirHandle = await open(dir, 'r').catch(() => undefined);
  await dirHandle?.sync().catch(() => undefined);
  await dirHandle?.close();
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
