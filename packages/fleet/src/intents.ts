import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@iot-tofu/host-io';

/**
 * What a verb is about to change, written before its first change and deleted after its last (or
 * after its rollback). A verb killed in between leaves its intent behind; the next verb that takes
 * the same lock finishes it (a remove) or undoes it (an add or setup not yet in the registry), the
 * way a package manager replays its journal. The registry stays the one truth: an intent only says
 * which folders without a registry entry are ours to delete.
 */
export type Intent =
  | { op: 'add'; serial: string; tag: string }
  | { op: 'remove'; serial: string; tag: string }
  | { op: 'setup'; base: string; tag: string; makeDefault: boolean };

export class IntentLog {
  constructor(private readonly dir: string) {}

  private file(key: string): string {
    return join(this.dir, `${key}.json`);
  }

  static keyOf(intent: Intent): string {
    return intent.op === 'setup' ? `setup-${intent.base}` : `pi-${intent.serial}`;
  }

  async record(intent: Intent): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeFileAtomic(this.file(IntentLog.keyOf(intent)), `${JSON.stringify(intent)}\n`, 0o600);
  }

  async clear(intent: Intent): Promise<void> {
    await rm(this.file(IntentLog.keyOf(intent)), { force: true });
  }

  /** The intent left for this key, if any (an unreadable one, from a kill mid-write, counts as none: writes are atomic). */
  async read(key: string): Promise<Intent | undefined> {
    const text = await readFile(this.file(key), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as Intent;
    } catch {
      return undefined;
    }
  }

  /** Every pending intent (what `open` looks at to repair what killed verbs left). */
  async pending(): Promise<Intent[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const out: Intent[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const intent = await this.read(name.slice(0, -'.json'.length));
      if (intent) out.push(intent);
    }
    return out;
  }
}
