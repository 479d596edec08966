/**
 * Whose problem is an `exportfs -ra` complaint? exportfs reads /etc/exports and every file in
 * /etc/exports.d, keeps going past bad lines and exits 1 if any line was bad, so a broken line in a
 * file someone else owns must not fail (and roll back) a change to ours. Pure.
 */

/** `ours`: names our file, one of our paths or one of our clients; `foreign`: names someone else's; `unknown`: names nothing we can tell. */
export type ExportfsIssueScope = 'ours' | 'foreign' | 'unknown';

export interface ExportfsIssue {
  /** The message without the `exportfs: ` prefix, continuation lines joined with `; `. */
  message: string;
  scope: ExportfsIssueScope;
  /** The exports file the message names (`file:line`, `file: line`, `file [line]`). */
  file?: string;
  line?: number;
  /** The export path the message names (`Failed to stat PATH`, `PATH is not a directory`, `No options for PATH`). */
  path?: string;
  /** The client spec the message names (`Invalid prefix ... for HOST`). */
  host?: string;
  /** exportfs only advises (`file [line]: Neither 'subtree_check' …`, `No options for …`); it fails for other lines. */
  warning?: true;
}

export interface OurExports {
  /** Our exports file. */
  file: string;
  /** The paths our file exports. */
  paths: readonly string[];
  /** The client specs our file uses. */
  hosts?: readonly string[];
}

// Shapes seen from nfs-utils 2.6 (generated with the real exportfs, see the table test).
const FILE_LINE = /^(\/[^:\s[]+)(?::\s?(\d+):| \[(\d+)\]:)\s*(.*)$/;
const FAILED_STAT = /^Failed to stat (.+?): [^:]+$/;
const NOT_A_DIRECTORY = /^(.+?) is not a directory\./;
const NO_OPTIONS = /^No options for (\S.*?) \S+: suggest /;
const INVALID_PREFIX = /^Invalid prefix `[^']*' for (\S+)$/;

/** Splits exportfs stderr into messages (indented lines continue the previous one) and says whose each is. */
export function classifyExportfsStderr(stderr: string, ours: OurExports): ExportfsIssue[] {
  const messages: string[] = [];
  for (const raw of stderr.split('\n')) {
    if (!raw.trim()) continue;
    if (/^\s/.test(raw) && messages.length > 0) messages[messages.length - 1] += `; ${raw.trim()}`;
    else messages.push(raw.trim().replace(/^exportfs:\s*/, ''));
  }
  return messages.map((message) => classifyMessage(message, ours));
}

function classifyMessage(message: string, ours: OurExports): ExportfsIssue {
  const fileLine = FILE_LINE.exec(message);
  if (fileLine) {
    const file = fileLine[1]!;
    const line = Number(fileLine[2] ?? fileLine[3]);
    return {
      message,
      scope: file === ours.file ? 'ours' : 'foreign',
      file,
      line,
      ...(fileLine[3] !== undefined ? { warning: true as const } : {}),
    };
  }
  const noOptions = NO_OPTIONS.exec(message);
  const pathMatch = FAILED_STAT.exec(message) ?? NOT_A_DIRECTORY.exec(message) ?? noOptions;
  if (pathMatch) {
    const path = pathMatch[1]!;
    return { message, scope: ours.paths.includes(path) ? 'ours' : 'foreign', path, ...(noOptions ? { warning: true as const } : {}) };
  }
  const prefix = INVALID_PREFIX.exec(message);
  if (prefix) {
    const host = prefix[1]!;
    return { message, scope: ours.hosts?.includes(host) ? 'ours' : 'foreign', host };
  }
  return { message, scope: 'unknown' };
}

/**
 * A failed `exportfs -ra` fails our change unless every error (not warning) it printed is about
 * someone else's exports; with no error to blame, it is ours to fail.
 */
export function exportfsFailureIsOurs(issues: readonly ExportfsIssue[]): boolean {
  const errors = issues.filter((issue) => !issue.warning);
  return errors.length === 0 || errors.some((issue) => issue.scope !== 'foreign');
}
