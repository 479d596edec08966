import { describe, expect, it } from 'vitest';
import { BootTracker, splitServedPath, type InitramfsLookup, type TrackedEvent } from '../src/boot-tracker.js';

const S = '9f55bbfd';
const ip = '10.77.0.120';
const seen = (at: number, model = 'pi4'): TrackedEvent => ({ type: 'pi-seen', serial: S, model, at });
const offer = (at: number): TrackedEvent => ({ type: 'offer-sent', serial: S, mac: 'dc:a6:32:01:36:c2', at });
const served = (at: number, file: string): TrackedEvent => ({ type: 'file-served', clientIp: ip, file, at });
const missing = (at: number, file: string): TrackedEvent => ({ type: 'transfer-failed', clientIp: ip, file, kind: 'missing', at });
const aborted = (at: number, file: string): TrackedEvent => ({ type: 'transfer-failed', clientIp: ip, file, kind: 'aborted', at });

describe('BootTracker', () => {
  const cases: Array<[string, TrackedEvent[], number, unknown[]]> = [
    [
      'a Pi 4 boot completes with the kernel',
      [seen(0), offer(0), aborted(100, `${S}/start4.elf`), served(900, `${S}/start4.elf`), served(4000, `${S}/kernel8.img`)],
      5000,
      [{ type: 'boot-complete', serial: S, ms: 4000, at: 4000 }],
    ],
    ['a kernel probe abort is not the end', [seen(0), offer(0), aborted(3000, `${S}/kernel8.img`)], 5000, []],
    [
      'start4.elf missing names the file',
      [seen(0), offer(0), missing(50, `${S}/start4.elf`)],
      5000,
      [{ type: 'boot-failed', serial: S, reason: 'start4.elf missing', at: 50 }],
    ],
    [
      'optional files may be missing',
      [seen(0), offer(0), missing(50, `${S}/pieeprom.sig`), missing(60, `${S}/overlays/overlay_map.dtb`)],
      5000,
      [],
    ],
    ['a Pi 4 asking for start.elf is not a failure', [seen(0), offer(0), missing(50, `${S}/start.elf`)], 5000, []],
    [
      'no TFTP after the offer',
      [seen(0), offer(0)],
      10_000,
      [{ type: 'boot-failed', serial: S, reason: 'no TFTP after offer', at: 10_000 }],
    ],
    ['not yet timed out', [seen(0), offer(0)], 9_999, []],
    [
      'repeated DISCOVERs keep the first start',
      [seen(0), offer(0), offer(1500), served(6000, `${S}/kernel8.img`)],
      7000,
      [{ type: 'boot-complete', serial: S, ms: 6000, at: 6000 }],
    ],
    [
      'Pi 3 bootcode.bin at the root is attributed by IP after the first prefixed request',
      [seen(0, 'pi3b'), offer(0), served(100, `${S}/start.elf`), missing(200, 'bootcode.bin')],
      1000,
      [{ type: 'boot-failed', serial: S, reason: 'bootcode.bin missing', at: 200 }],
    ],
    [
      'Pi 5 kernel',
      [seen(0, 'pi5'), offer(0), served(2500, `${S}/kernel_2712.img`)],
      3000,
      [{ type: 'boot-complete', serial: S, ms: 2500, at: 2500 }],
    ],
    ['unknown client IP and unprefixed file: nothing to say', [served(10, 'boot.ipxe')], 100_000, []],
    [
      'an initramfs after the kernel is part of the same boot, not a new one that stalls',
      [seen(0), offer(0), served(3000, `${S}/kernel8.img`), served(3500, `${S}/initramfs8`)],
      200_000,
      [{ type: 'boot-complete', serial: S, ms: 3000, at: 3000 }],
    ],
    [
      'a 32-bit kernel counts too',
      [seen(0), offer(0), served(2000, `${S}/kernel7l.img`)],
      3000,
      [{ type: 'boot-complete', serial: S, ms: 2000, at: 2000 }],
    ],
    [
      'a boot that recovers after a missing file still completes',
      [seen(0), offer(0), missing(50, `${S}/start4.elf`), served(2000, `${S}/kernel8.img`)],
      3000,
      [
        { type: 'boot-failed', serial: S, reason: 'start4.elf missing', at: 50 },
        { type: 'boot-complete', serial: S, ms: 2000, at: 2000 },
      ],
    ],
    [
      'a failure is reported once, also when the boot then stalls',
      [seen(0), offer(0), missing(50, `${S}/start4.elf`), missing(60, `${S}/start4.elf`)],
      100_000,
      [{ type: 'boot-failed', serial: S, reason: 'start4.elf missing', at: 50 }],
    ],
  ];
  it.each(cases)('%s', (_name, events, now, expected) => {
    const tracker = new BootTracker({ tftpAfterOfferTimeoutMs: 10_000 });
    const out = events.flatMap((e) => tracker.observe(e));
    out.push(...tracker.tick(now));
    expect(out).toEqual(expected);
  });

  describe('with config.txt naming an initramfs (Pi OS: auto_initramfs=1), the boot is served after it', () => {
    const auto: InitramfsLookup = (_serial, _model, kernel) => ({
      file: kernel === 'kernel_2712.img' ? 'initramfs_2712' : 'initramfs8',
      optional: true,
    });
    const explicit: InitramfsLookup = () => ({ file: 'initrd.img', optional: false });
    const timedOut = (at: number, file: string): TrackedEvent => ({ type: 'transfer-failed', clientIp: ip, file, kind: 'timeout', at });
    const cases: Array<[string, InitramfsLookup, TrackedEvent[], number, unknown[]]> = [
      [
        'kernel then initramfs8',
        auto,
        [seen(0), offer(0), served(3000, `${S}/kernel8.img`), served(3800, `${S}/initramfs8`)],
        4000,
        [{ type: 'boot-complete', serial: S, ms: 3800, at: 3800 }],
      ],
      [
        'Pi 5: initramfs_2712 after kernel_2712.img',
        auto,
        [seen(0, 'pi5'), offer(0), served(2500, `${S}/kernel_2712.img`), served(3000, `${S}/initramfs_2712`)],
        4000,
        [{ type: 'boot-complete', serial: S, ms: 3000, at: 3000 }],
      ],
      ['the kernel alone is not a served boot yet', auto, [seen(0), offer(0), served(3000, `${S}/kernel8.img`)], 4000, []],
      [
        'auto_initramfs with no initramfs in the folder: served at the miss',
        auto,
        [seen(0), offer(0), served(3000, `${S}/kernel8.img`), missing(3010, `${S}/initramfs8`)],
        4000,
        [{ type: 'boot-complete', serial: S, ms: 3010, at: 3010 }],
      ],
      [
        'an explicit initramfs that is missing fails the boot',
        explicit,
        [seen(0), offer(0), served(3000, `${S}/kernel8.img`), missing(3010, `${S}/initrd.img`)],
        4000,
        [{ type: 'boot-failed', serial: S, reason: 'initrd.img: missing after the kernel', at: 3010 }],
      ],
      [
        'an initramfs transfer that times out is a failed boot the timeline names',
        auto,
        [seen(0), offer(0), served(3000, `${S}/kernel8.img`), timedOut(33_000, `${S}/initramfs8`)],
        34_000,
        [{ type: 'boot-failed', serial: S, reason: 'initramfs8: timeout after the kernel', at: 33_000 }],
      ],
      [
        'no request at all after the kernel: a stall before the initramfs',
        auto,
        [seen(0), offer(0), served(3000, `${S}/kernel8.img`)],
        64_000,
        [{ type: 'boot-failed', serial: S, reason: 'no TFTP request for 60 s before initramfs8', at: 64_000 }],
      ],
    ];
    it.each(cases)('%s', (_name, initramfsOf, events, now, expected) => {
      const tracker = new BootTracker({ tftpAfterOfferTimeoutMs: 10_000, initramfsOf });
      const out = events.flatMap((e) => tracker.observe(e));
      out.push(...tracker.tick(now));
      expect(out).toEqual(expected);
    });
  });

  it('reports each failure once and tracks a new boot afterwards', () => {
    const tracker = new BootTracker({ tftpAfterOfferTimeoutMs: 1000 });
    tracker.observe(offer(0));
    expect(tracker.inProgress(S)).toBe(true);
    expect(tracker.tick(1000)).toHaveLength(1);
    expect(tracker.tick(2000)).toEqual([]);
    expect(tracker.inProgress(S)).toBe(false);
    tracker.observe(offer(5000));
    expect(tracker.observe(served(5200, `${S}/kernel8.img`))).toEqual([{ type: 'boot-complete', serial: S, ms: 200, at: 5200 }]);
  });

  it.each([
    ['9f55bbfd/start4.elf', { serial: '9f55bbfd', file: 'start4.elf' }],
    ['/9f55bbfd/overlays/x.dtbo', { serial: '9f55bbfd', file: 'overlays/x.dtbo' }],
    ['bootcode.bin', { file: 'bootcode.bin' }],
    ['dc-a6-32-01-36-c2/start4.elf', { file: 'dc-a6-32-01-36-c2/start4.elf' }],
  ])('splits %s', (path, expected) => {
    expect(splitServedPath(path)).toEqual(expected);
  });
});

describe('BootTracker admission bookkeeping', () => {
  it('counts admitted Pis as booting until their kernel, a failure or a stall', () => {
    const tracker = new BootTracker({ tftpAfterOfferTimeoutMs: 10_000, stallMs: 60_000 });
    tracker.admit('aaaaaaaa', 0);
    tracker.admit('bbbbbbbb', 0);
    tracker.admit('aaaaaaaa', 10); // a repeated DISCOVER is the same boot
    expect(tracker.activeBoots()).toBe(2);
    tracker.observe({ type: 'offer-sent', serial: 'aaaaaaaa', mac: 'dc:a6:32:00:00:01', at: 20 });
    tracker.observe({ type: 'file-served', clientIp: '10.0.0.1', file: 'aaaaaaaa/kernel8.img', at: 900 });
    expect(tracker.activeBoots()).toBe(1);
    // bbbbbbbb was admitted but its offer never went out: the slot frees silently after the timeout.
    expect(tracker.tick(10_000)).toEqual([]);
    expect(tracker.activeBoots()).toBe(0);
  });

  it('ends a boot that stops asking for files', () => {
    const tracker = new BootTracker({ tftpAfterOfferTimeoutMs: 10_000, stallMs: 60_000 });
    tracker.observe(offer(0));
    tracker.observe(served(500, `${S}/start4.elf`));
    expect(tracker.tick(60_499)).toEqual([]);
    expect(tracker.tick(60_500)).toEqual([
      { type: 'boot-failed', serial: S, reason: 'no TFTP request for 60 s before the kernel', at: 60_500 },
    ]);
    expect(tracker.inProgress(S)).toBe(false);
  });
});

describe('BootTracker.isKernelFile (which transfers steer the adaptive gate)', () => {
  const tracker = new BootTracker({ tftpAfterOfferTimeoutMs: 10_000 });
  tracker.observe({ type: 'pi-seen', serial: 'aaaaaaaa', model: 'pi4', at: 0 });
  it.each([
    ['aaaaaaaa', 'aaaaaaaa/kernel8.img', true],
    ['aaaaaaaa', 'kernel7l.img', true],
    ['aaaaaaaa', 'aaaaaaaa/start4.elf', false],
    ['aaaaaaaa', 'aaaaaaaa/config.txt', false],
    ['bbbbbbbb', 'bbbbbbbb/kernel_2712.img', true],
  ] as const)('%s %s → %s', (serial, path, expected) => {
    expect(tracker.isKernelFile(serial, path)).toBe(expected);
  });
});
