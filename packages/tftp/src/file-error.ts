import { IotTofuError } from '@iot-tofu/errors';
import type { TftpLogger } from './logger.js';

/** Why a file could not be opened; `reason` is what transfer events report. */
export type FileErrorReason = 'not-found' | 'access-denied' | 'io-error';

export class TftpFileError extends IotTofuError {
  readonly reason: FileErrorReason;
  constructor(reason: FileErrorReason, message: string, options?: { cause?: unknown }) {
    // A refusal (not found, access denied) is an answer to the client, not a fault: nobody reads
    // its stack, and capturing one was a measurable share of a Pi's not-found probe.
    const stackTraceLimit = Error.stackTraceLimit;
    if (reason !== 'io-error') Error.stackTraceLimit = 0;
    try {
      super(`TFTP_${reason.toUpperCase().replace('-', '_')}`, message, options);
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    this.reason = reason;
  }
}

/** Errors from the file system that mean "no such file" to a client. */
export function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'ELOOP';
}

/** A failed file-system call as a client-safe TftpFileError (no server paths); unexpected ones are logged. */
export function fileIoError(error: unknown, logger: TftpLogger): TftpFileError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return new TftpFileError('access-denied', 'Access violation', { cause: error });
  logger.warn({ err: error }, 'tftp: file read failed');
  return new TftpFileError('io-error', 'Read error', { cause: error });
}
