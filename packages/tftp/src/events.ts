import type { OpenedFile } from './file-source.js';

export interface TftpClient {
  readonly address: string;
  readonly port: number;
}

export interface TransferStartedEvent {
  readonly id: number;
  readonly client: TftpClient;
  /** The normalised request path (`9ffefdef/start4.elf`, no leading slash). */
  readonly file: string;
  readonly serial?: string;
  readonly origin: OpenedFile['origin'];
  readonly mode: 'octet' | 'netascii';
  readonly size: number;
  readonly blksize: number;
  readonly windowsize: number;
  /** Present when the client asked for tsize (a Pi's probe does). */
  readonly tsize?: number;
}

export interface FileServedEvent extends TransferStartedEvent {
  readonly bytes: number;
  readonly durationMs: number;
  readonly retries: number;
}

/** A client ended the transfer with an ERROR: normal Pi behaviour ("Early terminate" probes). */
export interface TransferAbortedEvent extends TransferStartedEvent {
  readonly reason: 'client-abort';
  readonly code: number;
  readonly message: string;
  readonly bytes: number;
  readonly durationMs: number;
}

export type TransferFailureReason = 'not-found' | 'access-denied' | 'io-error' | 'timeout' | 'write-refused' | 'illegal-mode' | 'shutdown';

export interface TransferFailedEvent {
  readonly id: number;
  readonly client: TftpClient;
  /** The normalised path once the file was opened; before that the client's name, made log-safe. */
  readonly file: string;
  readonly serial?: string;
  readonly reason: TransferFailureReason;
  readonly message: string;
  readonly bytes: number;
  readonly durationMs: number;
  readonly retries: number;
}

export type DropReason =
  | 'malformed'
  | 'unexpected-opcode'
  | 'duplicate-request'
  | 'rate-limited'
  | 'queue-full'
  | 'unconfirmed-limit'
  | 'foreign-tid'
  | 'duplicate-ack'
  | 'out-of-window-ack';

export interface PacketDroppedEvent {
  readonly reason: DropReason;
  readonly client: TftpClient;
}

export interface TftpServerEvents {
  'transfer-started': [TransferStartedEvent];
  'file-served': [FileServedEvent];
  'transfer-aborted': [TransferAbortedEvent];
  'transfer-failed': [TransferFailedEvent];
  'packet-dropped': [PacketDroppedEvent];
}

export interface TftpServerStats {
  readonly active: number;
  readonly queued: number;
  /** Transfer threads running besides the main thread. */
  readonly threads: number;
  /** Transfers handed to transfer threads (the rest ran on the main thread). */
  readonly threaded: number;
  readonly started: number;
  readonly completed: number;
  readonly aborted: number;
  readonly failed: number;
  readonly bytesSent: number;
  readonly retransmits: number;
  readonly dropped: number;
}
