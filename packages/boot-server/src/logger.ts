import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogLevel } from './config.js';

export type { Logger };

export interface LoggerOptions {
  level: LogLevel;
  /** Human-readable lines (when stdout is a terminal); JSON lines otherwise. */
  pretty?: boolean;
  /** Where the lines go; stdout by default. */
  destination?: NodeJS.WritableStream;
}

/** The daemon's one logger: JSON lines for journald and log shippers, readable on a terminal. */
export function createLogger(options: LoggerOptions): Logger {
  const base = { level: options.level };
  if (options.pretty) {
    return pino(
      base,
      pretty({
        colorize: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname',
        singleLine: true,
        destination: options.destination ?? process.stdout,
        sync: true,
      }),
    );
  }
  return pino(base, options.destination ?? pino.destination({ dest: 1, sync: true }));
}
