export { renderExports, parseExports, withExport, MANAGED_HEADER, ExportsSyntaxError, InvalidExportError } from './exports.js';
export type { ExportEntry, ExportClient } from './exports.js';
export { ManagedExports, ExportfsFailedError, silentLogger } from './managed-file.js';
export type { ManagedExportsOptions, Logger } from './managed-file.js';
export { execFileRunner, CommandFailedError } from './runner.js';
export type { CommandRunner, CommandResult, RunOptions } from './runner.js';
export { nfsHealth, parseExportfsVerbose } from './health.js';
export type { NfsHealth, ActiveExport } from './health.js';
export { writeFileAtomic } from './atomic.js';
