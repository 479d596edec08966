import { parsePiGuid } from '@iot-tofu/rpi';
import { describe, expect, it } from 'vitest';
import { behaviourFor } from '../src/behaviour.js';
import { bootPi, piGuid } from '../src/pi.js';
import { runBootStorm, simulatedIdentities, percentile } from '../src/storm.js';
import { FakeClock, ScriptedLink, type ScriptedFile } from './fake.js';

const SIZES: Record<string, number> = {
  'start4.elf': 2_300_000,
  'start.elf': 2_900_000,
  'bootcode.bin': 52_000,
  'config.txt': 2000,
  'fixup4.dat': 5400,
  'fixup.dat': 7300,
  'bcm2711-rpi-4-b.dtb': 52_000,
  'bcm2712-rpi-5-b.dtb': 76_000,
  'bcm2710-rpi-3-b.dtb': 32_000,
  'cmdline.txt': 120,
  'kernel8.img': 9_000_000,
  'kernel_2712.img': 9_500_000,
};

/** The boot tree of a typical server: every required file under the serial folder, optional ones missing. */
const tree =
  (options: { prefix?: boolean; kernelMs?: (attempt: number) => number } = {}) =>
  (path: string, attempt: number): ScriptedFile => {
    const parts = path.split('/');
    const prefixed = /^[0-9a-f]{8}$/.test(parts[0] ?? '');
    if (prefixed && options.prefix === false) return {};
    const name = prefixed ? parts.slice(1).join('/') : path;
    const size = SIZES[name];
    if (size === undefined) return {};
    return { size, ms: name.startsWith('kernel') ? (options.kernelMs?.(attempt) ?? 500) : 50 };
  };

const [pi4] = simulatedIdentities(1, 'pi4');
const [pi5] = simulatedIdentities(1, 'pi5');
const [pi3] = simulatedIdentities(1, 'pi3b');

async function boot(identity = pi4!, files = tree(), dhcpUp?: (n: number) => boolean, maxAttempts?: number) {
  const clock = new FakeClock();
  const link = new ScriptedLink(clock, files, dhcpUp);
  const report = await clock.run(
    bootPi({
      identity,
      behaviour: behaviourFor(identity.model),
      link,
      clock,
      signal: new AbortController().signal,
      random: () => 0.5,
      ...(maxAttempts ? { maxAttempts } : {}),
    }),
  );
  return { report, link };
}

describe('simulated Pi 4 bootloader (docs/pi-netboot-protocol.md 3.2)', () => {
  it('probes <serial>/start4.elf, then fetches the firmware, DTB, cmdline and kernel with tsize + blksize 1468', async () => {
    const { report, link } = await boot();
    const s = pi4!.serial;
    expect(link.fetches.map((f) => `${f.probe ? 'probe ' : ''}${f.path}`)).toEqual([
      `probe ${s}/start4.elf`,
      `${s}/config.txt`,
      `${s}/pieeprom.sig`,
      `${s}/recover4.elf`,
      `${s}/recovery.elf`,
      `${s}/start4.elf`,
      `${s}/fixup4.dat`,
      `${s}/config.txt`,
      `${s}/config.txt`,
      `${s}/dt-blob.bin`,
      `${s}/bcm2711-rpi-4-b.dtb`,
      `${s}/overlays/overlay_map.dtb`,
      `${s}/cmdline.txt`,
      `probe ${s}/kernel8.img`,
      `${s}/armstub8-gic.bin`,
      `${s}/kernel8.img`,
    ]);
    expect(link.fetches.every((f) => f.tsize && f.blksize === 1468 && f.timeoutMs === 30_000)).toBe(true);
    expect(report.bootMs).toBeGreaterThan(500);
    expect(report.attempts).toBe(1);
    expect(report.failures).toEqual([]);
    expect(report.usefulBytes).toBe(2_300_000 + 3 * 2000 + 5400 + 52_000 + 120 + 9_000_000);
    expect(report.timeline.at(-1)?.kind).toBe('booted');
  });

  it('drops the prefix for the rest of the boot when neither <serial>/start4.elf nor <serial>/start.elf exist', async () => {
    const { report, link } = await boot(pi4, tree({ prefix: false }));
    const paths = link.fetches.map((f) => f.path);
    expect(paths.slice(0, 4)).toEqual([`${pi4!.serial}/start4.elf`, `${pi4!.serial}/start.elf`, 'start4.elf', 'config.txt']);
    expect(paths.at(-1)).toBe('kernel8.img');
    expect(report.bootMs).toBeDefined();
  });

  it('gives up on a file after 30 s, backs off 5 s and starts over from DHCP', async () => {
    const { report, link } = await boot(pi4, tree({ kernelMs: (attempt) => (attempt === 1 ? 45_000 : 800) }));
    expect(report.attempts).toBe(2);
    expect(report.failures).toEqual([{ reason: 'file-timeout', detail: `${pi4!.serial}/kernel8.img: file limit` }]);
    expect(report.wastedBytes).toBe(6_000_000);
    expect(link.leases).toHaveLength(2);
    const failed = report.timeline.find((e) => e.kind === 'attempt-failed');
    const secondPowerOn = report.timeline.filter((e) => e.kind === 'power-on')[1];
    expect(secondPowerOn!.at - failed!.at).toBe(5000);
    expect(report.bootMs).toBeDefined();
  });

  it('counts a DHCP timeout (45 s without a usable offer) as a failed attempt and retries', async () => {
    const { report } = await boot(pi4, tree(), (n) => n > 1);
    expect(report.failures.map((f) => f.reason)).toEqual(['dhcp-timeout']);
    expect(report.bootMs).toBeGreaterThan(45_000 + 5000);
  });

  it('stops after maxAttempts and reports it never booted', async () => {
    const { report } = await boot(pi4, tree({ kernelMs: () => 60_000 }), undefined, 2);
    expect(report.bootMs).toBeUndefined();
    expect(report.failures).toHaveLength(2);
    expect(report.timeline.at(-1)?.kind).toBe('gave-up');
  });

  it('fails the attempt when a required file is missing', async () => {
    const { report } = await boot(pi4, (path, attempt) => (path.endsWith('cmdline.txt') ? {} : tree()(path, attempt)), undefined, 1);
    expect(report.failures).toEqual([{ reason: 'file-error', detail: `${pi4!.serial}/cmdline.txt: File not found` }]);
  });

  it('sends the RPi4 option-97 GUID with its serial and MAC', () => {
    expect(parsePiGuid(piGuid(pi4!, behaviourFor('pi4')))).toEqual({
      kind: 'fourcc',
      model: 'pi4',
      boardRevision: 0xc03114,
      macLow: pi4!.mac.slice(6),
      serial: pi4!.serial,
    });
  });
});

describe('simulated Pi 5 and Pi 3B bootloaders', () => {
  it('Pi 5: no start4.elf, kernel_2712.img, RPi5 GUID', async () => {
    const { report, link } = await boot(pi5);
    const paths = link.fetches.map((f) => f.path);
    expect(paths.some((p) => p.includes('start4.elf'))).toBe(false);
    expect(paths[0]).toBe(`${pi5!.serial}/config.txt`);
    expect(paths.at(-1)).toBe(`${pi5!.serial}/kernel_2712.img`);
    expect(parsePiGuid(link.leases[0]!.guid)).toMatchObject({ kind: 'fourcc', model: 'pi5', serial: pi5!.serial });
    expect(report.bootMs).toBeDefined();
  });

  it('Pi 3B: ROM fetches bootcode.bin without options, bootcode.bin runs its own DHCP and asks tsize with 512-byte blocks', async () => {
    const { report, link } = await boot(pi3);
    expect(link.fetches.slice(0, 2).map((f) => [f.path, f.tsize, f.blksize])).toEqual([
      ['bootcode.bin', false, 0],
      ['bootsig.bin', false, 0],
    ]);
    expect(link.fetches.slice(2).every((f) => f.tsize && f.blksize === 0)).toBe(true);
    expect(link.leases).toHaveLength(2);
    expect(link.leases.every((l) => l.xid === 0x26f30339)).toBe(true);
    expect(parsePiGuid(link.leases[0]!.guid)).toEqual({ kind: 'pi3-rom' });
    expect(report.bootMs).toBeDefined();
  });

  it('Pi 3B ROM sleeps after its DHCP tries instead of retrying', async () => {
    const { report } = await boot(pi3, tree(), () => false);
    expect(report.attempts).toBe(1);
    expect(report.timeline.at(-1)?.kind).toBe('gave-up');
    expect(report.bootMs).toBeUndefined();
  });
});

describe('boot storm', () => {
  it('runs every Pi, reports never-booted ones at the limit, and summarises', async () => {
    const clock = new FakeClock();
    const pis = simulatedIdentities(4, 'pi4');
    const slow = pis[3]!.serial;
    const link = new ScriptedLink(clock, (path, attempt) =>
      path.startsWith(slow) && path.endsWith('kernel8.img') ? { size: 9_000_000, ms: 60_000 } : tree()(path, attempt),
    );
    const result = await clock.run(runBootStorm({ pis, link, clock, limitMs: 100_000, random: () => 0.25 }));
    expect(result.summary).toMatchObject({ pis: 4, booted: 3, neverBooted: 1 });
    expect(result.summary.failuresByReason['file-timeout']).toBeGreaterThanOrEqual(2);
    expect(result.summary.bootMs.p50).not.toBeNull();
    expect(result.summary.elapsedMs).toBe(100_000);
  });

  it('runs a storm wider than the default listener limit of its stop signal without a warning', async () => {
    // fail-on-warnings (vitest.config.ts) fails this test on a MaxListenersExceededWarning.
    const clock = new FakeClock();
    const result = await clock.run(
      runBootStorm({ pis: simulatedIdentities(40, 'pi4'), link: new ScriptedLink(clock, tree()), clock, limitMs: 100_000 }),
    );
    expect(result.summary).toMatchObject({ pis: 40, booted: 40 });
  });

  it('gives every simulated Pi a distinct serial and MAC in its model OUI', () => {
    const pis = simulatedIdentities(300, 'pi4');
    expect(new Set(pis.map((p) => p.serial)).size).toBe(300);
    expect(new Set(pis.map((p) => p.mac)).size).toBe(300);
    expect(pis.every((p) => p.mac.startsWith('dc:a6:32:') && /^[0-9a-f]{8}$/.test(p.serial))).toBe(true);
  });

  it('nearest-rank percentiles', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        99,
      ),
    ).toBe(99);
    expect(percentile([5], 99)).toBe(5);
  });
});

describe('a Pi OS boot folder: what config.txt names is fetched, the initramfs ends the boot (docs/pi-netboot-protocol.md 9)', () => {
  const PI_OS_CONFIG = 'auto_initramfs=1\ndtoverlay=vc4-kms-v3d\narm_64bit=1\n';
  const piOs =
    (options: { initramfsMs?: number; initramfs?: boolean } = {}) =>
    (path: string, attempt: number): ScriptedFile => {
      const name = path.split('/').slice(1).join('/');
      if (name === 'config.txt') return { size: PI_OS_CONFIG.length, content: PI_OS_CONFIG, ms: 5 };
      if (name === 'overlays/vc4-kms-v3d-pi4.dtbo' || name === 'overlays/vc4-kms-v3d-pi5.dtbo') return { size: 4000, ms: 5 };
      if (name === 'initramfs8' || name === 'initramfs_2712')
        return options.initramfs === false ? {} : { size: 12_000_000, ms: options.initramfsMs ?? 700 };
      return tree()(path, attempt);
    };

  it.each([
    { identity: pi4!, overlay: 'overlays/vc4-kms-v3d-pi4.dtbo', kernel: 'kernel8.img', initramfs: 'initramfs8' },
    { identity: pi5!, overlay: 'overlays/vc4-kms-v3d-pi5.dtbo', kernel: 'kernel_2712.img', initramfs: 'initramfs_2712' },
  ])(
    '$identity.model: overlay after the map, initramfs after the kernel, booted only then',
    async ({ identity, overlay, kernel, initramfs }) => {
      const { report, link } = await boot(identity, piOs());
      const paths = link.fetches.filter((f) => !f.probe).map((f) => f.path.split('/').slice(1).join('/'));
      expect(paths.indexOf(overlay)).toBe(paths.indexOf('overlays/overlay_map.dtb') + 1);
      expect(paths.slice(-2)).toEqual([kernel, initramfs]);
      const files = report.timeline.filter((e) => e.kind === 'file');
      const booted = report.timeline.find((e) => e.kind === 'booted');
      expect(booted?.at).toBeGreaterThanOrEqual(files.at(-1)!.at);
      expect(files.at(-1)).toMatchObject({ path: `${identity.serial}/${initramfs}`, result: 'ok' });
    },
  );

  it('an initramfs that never arrives is a failed boot, not a booted one', async () => {
    const { report } = await boot(pi4!, piOs({ initramfsMs: 60_000 }), undefined, 1);
    expect(report.bootMs).toBeUndefined();
    expect(report.failures[0]).toMatchObject({ reason: 'file-timeout', detail: expect.stringContaining('initramfs8') });
  });

  it('auto_initramfs without an initramfs in the folder boots on the kernel alone', async () => {
    const { report } = await boot(pi4!, piOs({ initramfs: false }));
    expect(report.bootMs).toBeDefined();
  });

  it('a Pi 4 with a VL805 check and a D0 Pi 5 ask for their extra files', async () => {
    const { link } = await boot({ ...pi4!, board: { vl805: true } }, piOs());
    expect(link.fetches.map((f) => f.path)).toEqual(expect.arrayContaining([`${pi4!.serial}/vl805.sig`, `${pi4!.serial}/vl805.bin`]));
    const d0 = await boot({ ...pi5!, board: { d0: true } }, (path, attempt) =>
      path.endsWith('bcm2712d0-rpi-5-b.dtb') ? { size: 76_000, ms: 5 } : piOs()(path, attempt),
    );
    expect(d0.link.fetches.map((f) => f.path)).toContain(`${pi5!.serial}/bcm2712d0-rpi-5-b.dtb`);
    expect(d0.report.bootMs).toBeDefined();
  });
});
