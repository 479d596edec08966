/**
 * Why a requested name was refused before touching the disk (docs/pi-netboot-protocol.md 6). Every refusal maps
 * to a TFTP ERROR 2 "Access violation" except `empty`, which is ERROR 1.
 */
export type PathRejection = 'empty' | 'control-character' | 'parent-segment' | 'too-long';

export type SanitizedPath =
  | { readonly ok: true; readonly segments: readonly string[] }
  | { readonly ok: false; readonly reason: PathRejection };

const MAX_SEGMENT = 255;
const MAX_PATH = 1024;

/**
 * Turns a client-supplied TFTP filename into path segments relative to the root, or says why it
 * is refused. Pure. Backslashes count as separators (Windows-style clients, dnsmasq does the
 * same), one leading `/` is dropped, `.` and empty segments are ignored, `..` is refused outright
 * (never resolved), and NUL/control bytes are refused. Symlink escapes are caught later by
 * FileSource (realpath under the root).
 */
export function sanitizeTftpPath(name: string): SanitizedPath {
  if (name.length > MAX_PATH) return { ok: false, reason: 'too-long' };
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(name)) return { ok: false, reason: 'control-character' };
  const segments: string[] = [];
  for (const segment of name.replaceAll('\\', '/').split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') return { ok: false, reason: 'parent-segment' };
    if (segment.length > MAX_SEGMENT) return { ok: false, reason: 'too-long' };
    segments.push(segment);
  }
  if (segments.length === 0) return { ok: false, reason: 'empty' };
  return { ok: true, segments };
}
