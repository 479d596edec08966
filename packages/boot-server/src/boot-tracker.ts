import { bootSequence, isPiModel, type PiModel } from '@iot-tofu/rpi';

/** What the tracker concludes about a Pi's boot. */
export type BootOutcome =
  | { type: 'boot-complete'; serial: string; ms: number; at: number }
  | { type: 'boot-failed'; serial: string; reason: string; at: number };

/** The facts the tracker reads (a subset of the bus events). */
export type TrackedEvent =
  | { type: 'pi-seen'; serial?: string; model?: string; at: number }
  | { type: 'offer-sent'; serial?: string; mac: string; model?: string; at: number }
  | { type: 'transfer-started'; serial?: string; clientIp: string; file: string; at: number }
  | { type: 'file-served'; serial?: string; clientIp: string; file: string; at: number }
  | { type: 'transfer-failed'; serial?: string; clientIp: string; file: string; kind: string; at: number };

interface BootState {
  startedAt: number;
  offeredAt?: number;
  lastActivity: number;
  sawTftp: boolean;
  done: boolean;
  endedAt?: number;
  /** A failure was reported; the boot may still recover (e.g. the firmware falls back). */
  failureReported?: boolean;
  /** The kernel arrived; the firmware loads this initramfs next, and the boot is served after it. */
  awaiting?: InitramfsPlan;
}

/** Which initramfs follows `kernel` for this Pi (null: none), e.g. read from its config.txt. */
export type InitramfsLookup = (serial: string, model: PiModel | undefined, kernel: string) => InitramfsPlan | null;

/** The initramfs a Pi's config.txt makes the firmware load after the kernel. */
export interface InitramfsPlan {
  file: string;
  /** auto_initramfs=1: loaded only when present, so a missing one is no failure. */
  optional: boolean;
}

/** TFTP client addresses remembered (a long-running server on a churning network must not grow without end). */
const MAX_KNOWN_IPS = 10_000;

/** Kernel images of every Pi OS flavour (64-bit, 32-bit, Pi 5): serving one whole is the goal of a boot. */
const KERNEL_FILE = /^kernel[^/]*\.img$/;

/** `9f55bbfd/start4.elf` → { serial: '9f55bbfd', file: 'start4.elf' }; unprefixed paths have no serial. */
export function splitServedPath(path: string): { serial?: string; file: string } {
  const clean = path.replace(/^\/+/, '');
  const slash = clean.indexOf('/');
  const head = slash > 0 ? clean.slice(0, slash) : '';
  if (/^[0-9a-f]{8}$/.test(head)) return { serial: head, file: clean.slice(slash + 1) };
  return { file: clean };
}

/**
 * Follows each Pi's boot from the proxy offer to the last file its firmware loads (the initramfs
 * its config.txt names, else the kernel), and names what went wrong: "no TFTP after offer" when
 * the Pi never asks for a file, "<file> missing" when a file its model needs does not exist,
 * "initramfs8: timeout" when the kernel came but the initramfs did not. Pure: time comes in with
 * each event and with tick(); the initramfs plan comes from `initramfsOf` (config.txt on disk).
 */
export class BootTracker {
  private readonly boots = new Map<string, BootState>();
  /** TFTP clients are known by IP; a prefixed request teaches which serial an IP belongs to. */
  private readonly serialByIp = new Map<string, string>();
  private readonly modelBySerial = new Map<string, PiModel>();
  private tftpTimeoutMs: number;
  private readonly stallMs: number;
  private readonly afterBootMs: number;
  private readonly initramfsOf: InitramfsLookup;

  constructor(options: { tftpAfterOfferTimeoutMs: number; stallMs?: number; afterBootMs?: number; initramfsOf?: InitramfsLookup }) {
    this.initramfsOf = options.initramfsOf ?? (() => null);
    this.tftpTimeoutMs = options.tftpAfterOfferTimeoutMs;
    // A Pi gives up on a file after 30 s; a minute without any request means this boot is over.
    this.stallMs = options.stallMs ?? 60_000;
    // Files fetched after the kernel (initramfs, late overlays) still belong to the boot that ended.
    this.afterBootMs = options.afterBootMs ?? 60_000;
  }

  /** SIGHUP may change the timeout; boots in progress keep their state. */
  setTftpAfterOfferTimeout(ms: number): void {
    this.tftpTimeoutMs = ms;
  }

  /**
   * Admission let this Pi in: it counts as booting from now on, before the offer even leaves, so a
   * burst of DISCOVERs cannot all slip through one free slot.
   */
  admit(key: string, now: number): void {
    const state = this.boots.get(key);
    if (state && !state.done) return;
    this.boots.set(key, { startedAt: now, lastActivity: now, sawTftp: false, done: false });
  }

  /** Pis between admission/offer and their last boot file (or failure). */
  activeBoots(): number {
    let count = 0;
    for (const state of this.boots.values()) if (!state.done) count++;
    return count;
  }

  /**
   * The serial a TFTP event belongs to (from the event, its path, or what the IP asked for before).
   * The one home of this rule: the daemon puts the result on the events it forwards. A request
   * that names another serial (registered or not) takes the address over, so an unprefixed file
   * from it is never credited to the Pi that had the address before.
   */
  serialOf(event: { serial?: string; clientIp?: string; file?: string }): string | undefined {
    const fromPath = event.file ? splitServedPath(event.file).serial : undefined;
    const serial = event.serial ?? fromPath ?? (event.clientIp ? this.serialByIp.get(event.clientIp) : undefined);
    if (serial && event.clientIp && this.serialByIp.get(event.clientIp) !== serial) {
      if (this.serialByIp.size >= MAX_KNOWN_IPS) this.serialByIp.clear();
      this.serialByIp.set(event.clientIp, serial);
    }
    return serial;
  }

  observe(event: TrackedEvent): BootOutcome[] {
    if (event.type === 'pi-seen') {
      if (event.serial && event.model && isPiModel(event.model)) this.modelBySerial.set(event.serial, event.model);
      return [];
    }
    if (event.type === 'offer-sent') {
      if (!event.serial) return [];
      if (event.model && isPiModel(event.model)) this.modelBySerial.set(event.serial, event.model);
      const previous = this.boots.get(event.serial);
      // A Pi repeats DISCOVERs during one boot; a new boot starts after the last one finished.
      if (!previous || previous.done) {
        this.boots.set(event.serial, { startedAt: event.at, offeredAt: event.at, lastActivity: event.at, sawTftp: false, done: false });
      } else {
        previous.offeredAt ??= event.at;
        previous.lastActivity = event.at;
      }
      return [];
    }
    const serial = this.serialOf(event);
    if (!serial) return [];
    const known = this.boots.get(serial);
    if (known?.done && event.at - (known.endedAt ?? known.startedAt) < this.afterBootMs) return [];
    let state = known;
    if (!state || state.done) {
      // TFTP without an offer we saw (e.g. the daemon restarted mid-boot): track from here.
      state = { startedAt: event.at, lastActivity: event.at, sawTftp: true, done: false };
      this.boots.set(serial, state);
    }
    const current = state;
    state.sawTftp = true;
    state.lastActivity = event.at;
    const file = splitServedPath(event.file).file;
    const complete = (): BootOutcome[] => {
      end(current, event.at);
      return [{ type: 'boot-complete', serial, ms: event.at - current.startedAt, at: event.at }];
    };
    if (state.awaiting && file === state.awaiting.file) {
      if (event.type === 'file-served') return complete();
      if (event.type === 'transfer-failed') {
        if (event.kind === 'missing' && state.awaiting.optional) return complete();
        end(state, event.at);
        return [{ type: 'boot-failed', serial, reason: `${file}: ${event.kind} after the kernel`, at: event.at }];
      }
    }
    if (event.type === 'file-served' && this.isKernel(serial, file)) {
      const initramfs = this.initramfsOf(serial, this.modelBySerial.get(serial), file);
      if (!initramfs) return complete();
      state.awaiting = initramfs;
      return [];
    }
    if (event.type === 'transfer-failed' && event.kind === 'missing' && !state.failureReported && this.isRequired(serial, file)) {
      // Reported once; the boot stays open because the firmware may fall back (unprefixed paths).
      state.failureReported = true;
      return [{ type: 'boot-failed', serial, reason: `${file} missing`, at: event.at }];
    }
    return [];
  }

  /** Reports offers that never led to a TFTP request. */
  tick(now: number): BootOutcome[] {
    const out: BootOutcome[] = [];
    for (const [serial, state] of this.boots) {
      if (!state.done && !state.sawTftp && now - (state.offeredAt ?? state.startedAt) >= this.tftpTimeoutMs) {
        end(state, now);
        // Admitted but never offered (the offer went to someone else's key, or was not sent): just free the slot.
        if (state.offeredAt !== undefined) out.push({ type: 'boot-failed', serial, reason: 'no TFTP after offer', at: now });
      }
      if (!state.done && state.sawTftp && now - state.lastActivity >= this.stallMs) {
        end(state, now);
        const before = state.awaiting ? state.awaiting.file : 'the kernel';
        if (!state.failureReported)
          out.push({
            type: 'boot-failed',
            serial,
            reason: `no TFTP request for ${Math.round(this.stallMs / 1000)} s before ${before}`,
            at: now,
          });
      }
      // Forget finished boots after a while so the map stays small on a long-running server.
      if (state.done && now - state.startedAt > 3_600_000) this.boots.delete(serial);
    }
    return out;
  }

  /** True while a Pi is between its offer and its last boot file (used by admission control). */
  inProgress(serial: string): boolean {
    const state = this.boots.get(serial);
    return !!state && !state.done;
  }

  private models(serial: string): PiModel[] {
    const model = this.modelBySerial.get(serial);
    return model ? [model] : ['pi3b', 'pi3b+', 'pi4', 'pi5'];
  }

  /** True when `path` (with or without its serial folder) is a kernel image for this Pi. */
  isKernelFile(serial: string, path: string): boolean {
    return this.isKernel(serial, splitServedPath(path).file);
  }

  private isKernel(serial: string, file: string): boolean {
    return KERNEL_FILE.test(file) || this.models(serial).some((m) => bootSequence(m).some((r) => r.kernel && r.file === file));
  }

  private isRequired(serial: string, file: string): boolean {
    // Without a known model, only files every model needs count (a Pi 4 asking for start.elf is normal).
    const models = this.models(serial);
    return models.every((m) => bootSequence(m).some((r) => !r.optional && r.file === file));
  }
}

function end(state: BootState, at: number): void {
  state.done = true;
  state.endedAt = at;
}
