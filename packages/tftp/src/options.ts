import type { TftpOptions } from './packet.js';

export const DEFAULT_BLKSIZE = 512;
export const MIN_BLKSIZE = 8;
export const MAX_BLKSIZE = 65464;
/** Ethernet MTU 1500 − IPv4 20 − UDP 8 − TFTP 4: the largest block that needs no fragmentation. */
export const DEFAULT_MAX_BLKSIZE = 1468;

export interface NegotiationLimits {
  /** Largest blksize we grant (RFC 2348 range, default 1468). */
  readonly maxBlksize: number;
  /** Largest windowsize we grant (RFC 7440); 0 turns the option off. */
  readonly maxWindowsize: number;
}

export interface NegotiationInput {
  readonly options: TftpOptions;
  /** Lower-cased request mode; tsize is only offered for octet (netascii size is not known cheaply). */
  readonly mode: string;
  /** Bytes the client will receive, when known. */
  readonly fileSize?: number;
}

/** What a read transfer runs with, and the OACK to send (null: no accepted option, start with DATA 1). */
export interface NegotiatedOptions {
  readonly blksize: number;
  readonly windowsize: number;
  /** Retransmission interval the client asked for (RFC 2349), in seconds. */
  readonly timeoutSec?: number;
  readonly tsize?: number;
  readonly oack: TftpOptions | null;
}

function parseDecimal(value: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

/**
 * Decides which requested options we accept (RFC 2347/2348/2349/7440). Pure: the OACK lists only
 * options the client asked for and we accept, in the client's order; unknown or out-of-range
 * options are left out (never an error).
 */
export function negotiateOptions(input: NegotiationInput, limits: NegotiationLimits): NegotiatedOptions {
  const oack: Record<string, string> = {};
  let blksize = DEFAULT_BLKSIZE;
  let windowsize = 1;
  let timeoutSec: number | undefined;
  let tsize: number | undefined;
  const cap = Math.max(MIN_BLKSIZE, Math.min(MAX_BLKSIZE, limits.maxBlksize));

  for (const [name, raw] of Object.entries(input.options)) {
    const value = parseDecimal(raw);
    if (value === undefined) continue;
    switch (name) {
      case 'blksize':
        if (value < MIN_BLKSIZE) break;
        blksize = Math.min(value, cap);
        oack.blksize = String(blksize);
        break;
      case 'tsize':
        if (input.mode !== 'octet' || input.fileSize === undefined) break;
        tsize = input.fileSize;
        oack.tsize = String(tsize);
        break;
      case 'timeout':
        if (value < 1 || value > 255) break;
        timeoutSec = value;
        oack.timeout = String(value);
        break;
      case 'windowsize':
        if (value < 1 || value > 65535 || limits.maxWindowsize < 1) break;
        windowsize = Math.min(value, limits.maxWindowsize);
        oack.windowsize = String(windowsize);
        break;
      default:
        break;
    }
  }
  const accepted = Object.keys(oack).length > 0;
  return {
    blksize,
    windowsize,
    ...(timeoutSec !== undefined ? { timeoutSec } : {}),
    ...(tsize !== undefined ? { tsize } : {}),
    oack: accepted ? oack : null,
  };
}
