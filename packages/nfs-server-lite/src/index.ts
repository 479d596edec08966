export { renderExports, parseExports, withExport, MANAGED_HEADER, ExportsSyntaxError, InvalidExportError } from './exports.js';
export type { ExportEntry, ExportClient } from './exports.js';
export { ManagedExports, ExportfsFailedError } from './managed-file.js';
export type { ManagedExportsOptions, ForeignExportsIssues } from './managed-file.js';
export { classifyExportfsStderr, exportfsFailureIsOurs } from './exportfs-errors.js';
export type { ExportfsIssue, ExportfsIssueScope, OurExports } from './exportfs-errors.js';
export { nfsHealth, parseExportfsVerbose, parseNfsdVersions } from './health.js';
export type { NfsHealth, ActiveExport } from './health.js';
