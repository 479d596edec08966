import { MODEL_INFO, bootSequence, encodePiGuid, readBootVariant, type PiModel } from '@iot-tofu/rpi';
import { hasRomStage, type PiBehaviour } from './behaviour.js';
import { sleep, type Clock } from './clock.js';
import type { FailureReason, PiReport, TimelineEvent } from './timeline.js';

/** Who a simulated Pi is on the wire. */
export interface PiIdentity {
  readonly name: string;
  /** Low 32 bits of the serial, 8 lower-case hex digits: the TFTP prefix folder. */
  readonly serial: string;
  readonly mac: string;
  readonly model: PiModel;
  /** Board facts that add requests: a Pi 4 checking for a VL805 update, a D0-stepping Pi 5. */
  readonly board?: { readonly vl805?: boolean; readonly d0?: boolean };
}

export interface DhcpLease {
  readonly address: string;
  readonly tftpServer: string;
}

/** One DHCP sequence as the bootloader runs it (DISCOVER resends, offers, optional REQUEST). */
export interface LeaseRequest {
  readonly identity: PiIdentity;
  readonly behaviour: PiBehaviour;
  readonly xid: number;
  /** Option 97 as the model sends it (17 bytes). */
  readonly guid: Uint8Array;
  /** Reports discover/offer events into the Pi's timeline. */
  readonly onEvent: (event: { kind: 'discover'; xid: number } | { kind: 'offer'; from: string; address?: string; pxe: boolean }) => void;
  readonly signal: AbortSignal;
}

export type LeaseOutcome = { ok: true; lease: DhcpLease } | { ok: false; detail: string };

/** One TFTP read as the bootloader does it. */
export interface FetchRequest {
  readonly server: string;
  readonly localAddress: string;
  readonly path: string;
  /** Ask for tsize (everything after the Pi 3 ROM stage). */
  readonly tsize: boolean;
  /** Ask for this block size; 0 = no blksize option (512-byte blocks). */
  readonly blksize: number;
  /** Read the OACK, then end with ERROR 0 "Early terminate". */
  readonly probe: boolean;
  readonly timeoutMs: number;
  readonly rrqResendMs: number;
  readonly ackResendMs: number;
  readonly signal: AbortSignal;
  /** Return the file's bytes (config.txt: the firmware reads it to know what to load next). */
  readonly keepContent?: boolean;
}

export interface FetchOutcome {
  readonly result: 'ok' | 'probe' | 'not-found' | 'error' | 'timeout';
  /** DATA payload bytes received (for a complete file: its size). */
  readonly bytes: number;
  readonly retransmits: number;
  readonly detail?: string;
  /** The bytes, for a complete transfer asked with keepContent. */
  readonly content?: Uint8Array;
}

/** The network a simulated Pi talks through: real sockets in runs, a scripted fake in unit tests. */
export interface PiLink {
  acquireLease(request: LeaseRequest): Promise<LeaseOutcome>;
  fetch(request: FetchRequest): Promise<FetchOutcome>;
}

export interface BootPiOptions {
  readonly identity: PiIdentity;
  readonly behaviour: PiBehaviour;
  readonly link: PiLink;
  readonly clock: Clock;
  /** Aborting ends the simulation: a Pi not booted by then is reported as never booted. */
  readonly signal: AbortSignal;
  /** EEPROM TFTP_IP: use this TFTP server whatever the offer says. */
  readonly tftpServer?: string;
  /** NET_BOOT_MAX_RETRIES + 1; default unlimited (BOOT_ORDER 0xf21 loops forever). */
  readonly maxAttempts?: number;
  readonly random?: () => number;
}

type AttemptResult = { booted: true } | { booted: false; reason: FailureReason; detail: string; sleep?: boolean };

/**
 * Runs one Pi's bootloader from power-on until the last file the firmware loads arrived (the
 * initramfs when config.txt asks for one, else the kernel), it gave up, or the run was stopped. Failed attempts follow the EEPROM: 5 s back-off, then DHCP again.
 */
export async function bootPi(options: BootPiOptions): Promise<PiReport> {
  const { identity, behaviour, link, clock, signal } = options;
  const random = options.random ?? Math.random;
  const start = clock.now();
  const timeline: TimelineEvent[] = [];
  const failures: { reason: FailureReason; detail: string }[] = [];
  let attempt = 0;
  let wastedBytes = 0;
  let usefulBytes = 0;
  let bootMs: number | undefined;
  const at = () => clock.now() - start;
  const guid = piGuid(identity, behaviour);

  const lease = async (): Promise<LeaseOutcome> => {
    const xid = behaviour.constantXid ?? Math.floor(random() * 0x1_0000_0000) >>> 0;
    const outcome = await link.acquireLease({
      identity,
      behaviour,
      xid,
      guid,
      signal,
      onEvent: (event) => timeline.push({ at: at(), attempt, ...event }),
    });
    if (outcome.ok) {
      const tftpServer = options.tftpServer ?? outcome.lease.tftpServer;
      timeline.push({ at: at(), attempt, kind: 'bound', address: outcome.lease.address, tftpServer });
      return { ok: true, lease: { address: outcome.lease.address, tftpServer } };
    }
    return outcome;
  };

  const fetch = async (
    leased: DhcpLease,
    path: string,
    stage: 'rom' | 'firmware',
    probe: boolean,
    keepContent = false,
  ): Promise<FetchOutcome> => {
    const began = clock.now();
    const outcome = await link.fetch({
      keepContent,
      server: leased.tftpServer,
      localAddress: leased.address,
      path,
      tsize: stage === 'firmware',
      blksize: stage === 'firmware' ? behaviour.blksize : 0,
      probe,
      timeoutMs: behaviour.fileTimeoutMs,
      rrqResendMs: behaviour.rrqResendMs,
      ackResendMs: behaviour.ackResendMs,
      signal,
    });
    if (outcome.result === 'ok') usefulBytes += outcome.bytes;
    else if (outcome.result === 'timeout' || outcome.result === 'error') wastedBytes += outcome.bytes;
    timeline.push({
      at: at(),
      attempt,
      kind: 'file',
      path,
      result: outcome.result,
      bytes: outcome.bytes,
      ms: clock.now() - began,
      retransmits: outcome.retransmits,
      ...(outcome.detail ? { detail: outcome.detail } : {}),
    });
    return outcome;
  };

  const runAttempt = async (): Promise<AttemptResult> => {
    const first = await lease();
    if (!first.ok) return { booted: false, reason: 'dhcp-timeout', detail: first.detail, sleep: behaviour.romSleepsAfterDhcpFailure };
    let leased = first.lease;
    const board = identity.board ?? {};
    // The firmware learns the kernel, initramfs and overlays from config.txt: the sequence after it follows what it read.
    let sequence = bootSequence(identity.model, board);
    let kernelLoaded = false;
    const info = MODEL_INFO[identity.model];
    let prefix = identity.serial;
    let romStage = hasRomStage(identity.model);
    let prefixDecided = false;
    for (let i = 0; i < sequence.length; i++) {
      const request = sequence[i];
      if (!request) break;
      if (romStage && request.prefixed) {
        // bootcode.bin is running now: it does its own DHCP before its first TFTP request.
        romStage = false;
        const second = await lease();
        if (!second.ok) return { booted: false, reason: 'dhcp-timeout', detail: `bootcode.bin: ${second.detail}` };
        leased = second.lease;
      }
      const path = request.prefixed && prefix ? `${prefix}/${request.file}` : request.file;
      const isConfig = request.file === 'config.txt' && !request.probe;
      const outcome = await fetch(leased, path, romStage ? 'rom' : 'firmware', request.probe === true, isConfig);
      if (signal.aborted) return { booted: false, reason: 'file-timeout', detail: 'simulation stopped' };
      if (outcome.result === 'ok' || outcome.result === 'probe') {
        if (request.prefixed && request.file === info.prefixProbe) prefixDecided = true;
        if (request.kernel && outcome.result === 'ok') kernelLoaded = true;
        if (isConfig && outcome.content) {
          sequence = bootSequence(identity.model, {
            ...board,
            ...readBootVariant(Buffer.from(outcome.content).toString('utf8'), identity.model),
          });
        }
        continue;
      }
      if (outcome.result === 'not-found') {
        if (request.prefixed && prefix && !prefixDecided && request.file === info.prefixProbe) {
          // No <serial>/start4.elf: the Pi 4 also tries <serial>/start.elf, then drops the prefix for this boot.
          if (identity.model === 'pi4') {
            const fallback = await fetch(leased, `${prefix}/start.elf`, 'firmware', true);
            if (fallback.result === 'ok' || fallback.result === 'probe') {
              prefixDecided = true;
              continue;
            }
          }
          prefix = '';
          prefixDecided = true;
          i--;
          continue;
        }
        if (request.optional) continue;
        return { booted: false, reason: 'file-error', detail: `${path}: ${outcome.detail ?? 'not found'}` };
      }
      if (outcome.result === 'error') {
        if (request.optional) continue;
        return { booted: false, reason: 'file-error', detail: `${path}: ${outcome.detail ?? 'error'}` };
      }
      return { booted: false, reason: 'file-timeout', detail: `${path}: ${outcome.detail ?? 'timed out'}` };
    }
    if (kernelLoaded) return { booted: true };
    return { booted: false, reason: 'file-error', detail: 'boot sequence has no kernel request' };
  };

  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  while (!signal.aborted && attempt < maxAttempts) {
    attempt++;
    timeline.push({ at: at(), attempt, kind: 'power-on' });
    const result = await runAttempt();
    if (signal.aborted) break;
    if (result.booted) {
      bootMs = at();
      timeline.push({ at: bootMs, attempt, kind: 'booted' });
      break;
    }
    failures.push({ reason: result.reason, detail: result.detail });
    timeline.push({ at: at(), attempt, kind: 'attempt-failed', reason: result.reason, detail: result.detail });
    if (result.sleep) {
      timeline.push({ at: at(), attempt, kind: 'gave-up', detail: 'Pi 3 ROM sleeps after its DHCP tries' });
      break;
    }
    if (attempt >= maxAttempts) {
      timeline.push({ at: at(), attempt, kind: 'gave-up', detail: `${maxAttempts} attempts used` });
      break;
    }
    await sleep(clock, behaviour.retryBackoffMs, signal);
  }

  return {
    name: identity.name,
    serial: identity.serial,
    mac: identity.mac,
    model: identity.model,
    bootMs,
    attempts: attempt,
    failures,
    wastedBytes,
    usefulBytes,
    timeline,
  };
}

/** Option 97 as each model sends it (docs/pi-netboot-protocol.md 1.3, 2.1). */
export function piGuid(identity: PiIdentity, behaviour: PiBehaviour): Uint8Array {
  switch (identity.model) {
    case 'pi3b':
      return encodePiGuid({ kind: 'pi3-rom' });
    case 'pi3b+':
      return encodePiGuid({ kind: 'serial-x4', serial: identity.serial });
    case 'pi4':
    case 'pi5':
      return encodePiGuid(
        {
          kind: 'fourcc',
          model: identity.model,
          boardRevision: behaviour.boardRevision,
          macLow: identity.mac.slice(6),
          serial: identity.serial,
        },
        identity.mac,
      );
  }
}
