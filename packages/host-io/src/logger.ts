/**
 * The part of pino's Logger the libraries use: pass a pino logger (or a child of one) as is. The
 * packages log through this interface and stay silent unless the caller hands them a logger.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The default logger of every library: prints nothing. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
