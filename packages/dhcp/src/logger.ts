/** The part of pino's Logger the library uses; pass a pino logger (or a child of one) as is. */
export interface DhcpLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child?(bindings: object): DhcpLogger;
  /** pino's level check: lets hot paths skip building log objects nobody reads. */
  isLevelEnabled?(level: string): boolean;
}

const noop = (): void => undefined;

/** Default logger: libraries print nothing unless the caller hands them a logger. */
export const silentLogger: DhcpLogger = { debug: noop, info: noop, warn: noop, error: noop, isLevelEnabled: () => false };

/** Client-supplied text made safe for logs (dnsmasq sanitise()): printable ASCII only, bounded. */
export function sanitizeForLog(text: string, max = 120): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
