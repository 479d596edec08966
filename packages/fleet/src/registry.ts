import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock, writeFileAtomic } from '@iot-tofu/host-io';
import { FleetError } from './errors.js';
import type { BaseJson } from './types.js';

/** A registered Pi as stored: only what the operator decided; learned facts live in seen.json. */
export interface RegisteredPi {
  serial: string;
  serialFull: string;
  owner: string;
  name: string;
  base: string | null;
  /** MAC given by the operator, normalised; null when not given. */
  mac: string | null;
  ownFilesystem: boolean;
  addedAt: string;
  /** Which export paths we created for it (removed again on remove). */
  exports: string[];
  /** Fixed address in full-DHCP mode; absent when none. */
  staticIp?: string;
  /** Its docker disk: image path inside its root (relative) and size; absent when none. */
  dockerDisk?: { path: string; bytes: number };
  /** Who add prepared for the first login (user name, number of SSH keys); never a password or hash. */
  firstLogin?: { user: string | null; sshKeys: number };
}

export type StoredBase = Omit<BaseJson, 'default'>;

/**
 * What a Pi's files look like on disk. 1: boot folder with cmdline.txt, owner, name only (firmware
 * from <tftpRoot>/base) and NFSv4.1 options Pi OS's initramfs rejects; 2: the boot folder holds
 * every boot file and the NFS options are v3 (boot-folder.ts). Missing in files of layout 1.
 */
export const CURRENT_LAYOUT = 2;

export interface RegistryData {
  version: 1;
  layout: number;
  pis: Record<string, RegisteredPi>;
  bases: Record<string, StoredBase>;
  defaultBase: string | null;
}

/**
 * A table keyed by operator input (serials, base names) with no prototype: `bases['constructor']`
 * is undefined, not Object's constructor (a base named `toString` once answered 500).
 */
export function keyedTable<T>(entries: Record<string, T> = {}): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, entries);
}

export const emptyRegistry = (): RegistryData => ({
  version: 1,
  layout: CURRENT_LAYOUT,
  pis: keyedTable(),
  bases: keyedTable(),
  defaultBase: null,
});

/**
 * registry.json in the state dir: read without a lock (writes are atomic renames), changed only
 * inside `mutate`, which holds registry.lock and re-reads the file first, so two processes never
 * lose each other's writes.
 */
export class RegistryStore {
  readonly file: string;
  private readonly lockFile: string;

  constructor(readonly stateDir: string) {
    this.file = join(stateDir, 'registry.json');
    this.lockFile = join(stateDir, 'registry.lock');
  }

  async read(): Promise<RegistryData> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyRegistry();
      throw error;
    }
    try {
      const data = JSON.parse(text) as RegistryData;
      if (data.version !== 1 || typeof data.pis !== 'object' || typeof data.bases !== 'object') throw new Error('unexpected shape');
      return {
        version: 1,
        layout: typeof data.layout === 'number' ? data.layout : 1,
        pis: keyedTable(data.pis),
        bases: keyedTable(data.bases),
        defaultBase: data.defaultBase ?? null,
      };
    } catch (error) {
      throw new FleetError('REGISTRY_CORRUPT', `${this.file} is not a valid iot-tofu registry: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /** Runs `change` on the freshest data under the lock; writes only when it returns true. */
  async mutate<T>(
    change: (data: RegistryData) => Promise<{ write: boolean; value: T }> | { write: boolean; value: T },
  ): Promise<{ data: RegistryData; value: T }> {
    await mkdir(this.stateDir, { recursive: true });
    const release = await acquireLock(this.lockFile, { timeoutMs: 30_000, what: 'the registry' });
    try {
      const data = await this.read();
      const { write, value } = await change(data);
      if (write) await writeFileAtomic(this.file, `${JSON.stringify(data, null, 2)}\n`, 0o644);
      return { data, value };
    } finally {
      await release();
    }
  }
}
