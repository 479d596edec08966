/** Why one boot attempt of a simulated Pi ended without a kernel. */
export type FailureReason =
  /** No usable pair of offers (address + "Raspberry Pi Boot") within DHCP_TIMEOUT. */
  | 'dhcp-timeout'
  /** A file did not finish within TFTP_FILE_TIMEOUT (30 s), or the server never answered. */
  | 'file-timeout'
  /** The server answered a required file with an ERROR (e.g. file not found). */
  | 'file-error';

/** One entry of a Pi's timeline; `at` is milliseconds since the Pi was powered on. */
export type TimelineEvent =
  | { at: number; kind: 'power-on'; attempt: number }
  | { at: number; kind: 'discover'; attempt: number; xid: number }
  | { at: number; kind: 'offer'; attempt: number; from: string; address?: string; pxe: boolean }
  | { at: number; kind: 'bound'; attempt: number; address: string; tftpServer: string }
  | {
      at: number;
      kind: 'file';
      attempt: number;
      path: string;
      result: 'ok' | 'probe' | 'not-found' | 'error' | 'timeout';
      bytes: number;
      ms: number;
      retransmits: number;
      detail?: string;
    }
  | { at: number; kind: 'attempt-failed'; attempt: number; reason: FailureReason; detail: string }
  | { at: number; kind: 'booted'; attempt: number }
  | { at: number; kind: 'gave-up'; attempt: number; detail: string };

/** What one simulated Pi did, from power-on to kernel (or not). */
export interface PiReport {
  readonly name: string;
  readonly serial: string;
  readonly mac: string;
  readonly model: string;
  /** Milliseconds from power-on to the last kernel byte; undefined if the Pi never booted. */
  readonly bootMs: number | undefined;
  readonly attempts: number;
  readonly failures: readonly { reason: FailureReason; detail: string }[];
  /** DATA payload bytes received in transfers that never completed (timeouts, errors mid-file). */
  readonly wastedBytes: number;
  /** DATA payload bytes received in completed transfers. */
  readonly usefulBytes: number;
  readonly timeline: readonly TimelineEvent[];
}

export function formatEvent(event: TimelineEvent): string {
  const t = `${(event.at / 1000).toFixed(3).padStart(8)}s`;
  switch (event.kind) {
    case 'power-on':
      return `${t} power on (attempt ${event.attempt})`;
    case 'discover':
      return `${t} DHCPDISCOVER xid 0x${event.xid.toString(16).padStart(8, '0')}`;
    case 'offer':
      return `${t} OFFER from ${event.from}${event.address ? ` address ${event.address}` : ''}${event.pxe ? ' (Raspberry Pi Boot)' : ''}`;
    case 'bound':
      return `${t} bound ${event.address}, TFTP server ${event.tftpServer}`;
    case 'file':
      return `${t} ${event.result.padEnd(9)} ${event.path} ${event.bytes} B in ${event.ms.toFixed(0)} ms${event.retransmits ? `, ${event.retransmits} resends` : ''}${event.detail ? ` (${event.detail})` : ''}`;
    case 'attempt-failed':
      return `${t} attempt ${event.attempt} failed: ${event.reason} (${event.detail})`;
    case 'booted':
      return `${t} booted: last kernel byte received`;
    case 'gave-up':
      return `${t} gave up: ${event.detail}`;
  }
}
