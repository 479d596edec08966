/** The part of pino's Logger the library uses; pass a pino logger (or a child of one) as is. */
export interface TftpLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child?(bindings: object): TftpLogger;
}

const noop = (): void => undefined;

/** Default logger: libraries print nothing unless the caller hands them a logger. */
export const silentLogger: TftpLogger = { debug: noop, info: noop, warn: noop, error: noop };

export function childLogger(logger: TftpLogger, bindings: object): TftpLogger {
  return logger.child ? logger.child(bindings) : logger;
}

/** Client-supplied text made safe for logs (dnsmasq sanitise()): printable ASCII only, bounded. */
export function sanitizeForLog(text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
