import { TftpErrorCode } from './packet.js';
import type { TftpRequestPacket } from './packet.js';
import { memoryBody } from './file-body.js';
import type { FileBody } from './file-body.js';
import { TftpFileError } from './file-error.js';
import type { FileErrorReason } from './file-error.js';
import type { OpenedFile, OpenOptions } from './file-source.js';
import type { TftpLogger } from './logger.js';
import { toNetascii } from './netascii.js';
import type { TftpClient, TransferFailureReason } from './events.js';

/** Largest file converted to netascii (the conversion holds the whole file in memory). */
const NETASCII_MAX_BYTES = 16 * 1024 * 1024;

const ERROR_CODE: Record<FileErrorReason, number> = {
  'not-found': TftpErrorCode.FILE_NOT_FOUND,
  'access-denied': TftpErrorCode.ACCESS_VIOLATION,
  'io-error': TftpErrorCode.NOT_DEFINED,
};

/** What the server needs from a file source (FileSource, or a test double). */
export interface TftpFileOpener {
  open(name: string, options?: OpenOptions): Promise<OpenedFile>;
}

export type RequestedFile =
  | { readonly ok: true; readonly opened: OpenedFile; readonly body: FileBody }
  | { readonly ok: false; readonly reason: TransferFailureReason; readonly code: number; readonly message: string };

/**
 * Opens the file an RRQ names, as the body its transfer sends: the file's own bytes in octet
 * mode, a converted copy in netascii. A refusal carries the ERROR code and client-safe message.
 */
export async function openRequestedFile(
  source: TftpFileOpener,
  request: TftpRequestPacket,
  client: TftpClient,
  maxBlksize: number,
  log: TftpLogger,
): Promise<RequestedFile> {
  let opened: OpenedFile;
  const requestedBlksize = Number(request.options.blksize);
  try {
    opened = await source.open(request.filename, {
      client,
      // Streamed chunks are aligned to the block size the transfer will most likely get.
      blksize: Number.isInteger(requestedBlksize) && requestedBlksize >= 8 ? Math.min(requestedBlksize, maxBlksize) : 512,
    });
  } catch (error) {
    if (error instanceof TftpFileError) {
      return { ok: false, reason: error.reason, code: ERROR_CODE[error.reason], message: error.message };
    }
    log.error({ err: error }, 'tftp: file source failed');
    return { ok: false, reason: 'io-error', code: TftpErrorCode.NOT_DEFINED, message: 'Read error' };
  }
  if (request.mode !== 'netascii') return { ok: true, opened, body: opened.body };
  const body = opened.body;
  if (body.size > NETASCII_MAX_BYTES) {
    body.release();
    return { ok: false, reason: 'io-error', code: TftpErrorCode.NOT_DEFINED, message: 'File too large for netascii' };
  }
  try {
    const converted = toNetascii(await body.read(0, body.size));
    return { ok: true, opened, body: memoryBody(converted) };
  } catch (error) {
    log.warn({ err: error }, 'tftp: netascii read failed');
    return { ok: false, reason: 'io-error', code: TftpErrorCode.NOT_DEFINED, message: 'Read error' };
  } finally {
    body.release();
  }
}
