// The fleet page and MQTT read a Pi's state through one machine (src/boot-state.ts); the page
// loads web/boot-state.js, generated from it. These tests fail when the copy is stale or behaves
// differently from the source on any of the sequences below.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import * as source from '../src/boot-state.js';
import { defaultWebDir } from '../src/web/assets.js';

type Machine = typeof source;
type Step = { type: string; at: number | string; reason?: string; ms?: number };

const SEQUENCES: Record<string, Step[]> = {
  'through the gate to booted': [
    { type: 'dhcp-ignored', reason: 'deferred', at: 1000 },
    { type: 'dhcp-ignored', reason: 'deferred', at: 3000 },
    { type: 'offer-sent', at: 4500 },
    { type: 'transfer-started', at: 4600 },
    { type: 'file-served', at: 4700 },
    { type: 'boot-complete', ms: 5000, at: '1970-01-01T00:00:09.500Z' },
    { type: 'file-served', at: 12_000 },
  ],
  'TFTP only: booted, then a reboot without DHCP': [
    { type: 'file-served', at: 1000 },
    { type: 'boot-complete', ms: 800, at: 1800 },
    { type: 'transfer-started', at: 200_000 },
    { type: 'file-served', at: 200_100 },
    { type: 'boot-complete', ms: 900, at: 200_900 },
  ],
  'a failure, the firmware falls back, then completes': [
    { type: 'offer-sent', at: 0 },
    { type: 'transfer-failed', at: 100 },
    { type: 'boot-failed', reason: 'start4.elf missing', at: 100 },
    { type: 'file-served', at: 300 },
    { type: 'boot-complete', ms: 700, at: 700 },
  ],
  'ignored for other reasons, and events the machine does not read': [
    { type: 'dhcp-ignored', reason: 'unregistered', at: 0 },
    { type: 'pi-seen', at: 10 },
    { type: 'registry-changed', at: 20 },
    { type: 'boot-failed', reason: 'no TFTP after offer', at: 30 },
    { type: 'offer-sent', at: 40 },
  ],
};

describe('one boot-state machine for the page and MQTT', () => {
  let page: Machine;
  beforeAll(async () => {
    page = (await import(pathToFileURL(join(defaultWebDir(), 'boot-state.js')).href)) as Machine;
  });

  it('the page copy is generated from the current source', () => {
    const script = fileURLToPath(new URL('../scripts/web-boot-state.mjs', import.meta.url));
    expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
  });

  for (const [name, steps] of Object.entries(SEQUENCES)) {
    it(`gives the same state after every step: ${name}`, () => {
      let mine = source.IDLE;
      let theirs = page.IDLE;
      for (const step of steps) {
        mine = source.nextBootState(mine, step.type, step);
        theirs = page.nextBootState(theirs, step.type, step);
        expect(theirs, `${step.type} at ${step.at}`).toEqual(mine);
      }
      expect(page.bootStateOf(steps)).toEqual(source.bootStateOf(steps));
    });
  }

  it('says booting for a TFTP-only reboot and keeps late files with the boot that just completed', () => {
    const [tftpOnly] = [SEQUENCES['TFTP only: booted, then a reboot without DHCP']!];
    expect(source.bootStateOf(tftpOnly.slice(0, 2))).toMatchObject({ state: 'booted', lastBoot: 1800, lastBootMs: 800 });
    expect(source.bootStateOf(tftpOnly.slice(0, 3)).state).toBe('booting');
    const gate = SEQUENCES['through the gate to booted']!;
    expect(source.bootStateOf(gate)).toMatchObject({ state: 'booted', gateWaitMs: 3500, lastBoot: 9500 });
    expect(source.bootStateOf(SEQUENCES['a failure, the firmware falls back, then completes']!.slice(0, 3))).toMatchObject({
      state: 'failed',
      reason: 'start4.elf missing',
    });
  });
});
