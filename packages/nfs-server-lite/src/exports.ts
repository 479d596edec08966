import { IotTofuError } from '@iot-tofu/errors';

/** One client spec of an export line: `10.77.0.0/24(rw,sync,no_subtree_check)`. */
export interface ExportClient {
  /** Host, network (`10.0.0.0/24`), wildcard or `*`. */
  host: string;
  options: readonly string[];
}

/** One line of an exports file: a path and who may mount it with which options. */
export interface ExportEntry {
  path: string;
  clients: readonly ExportClient[];
}

export class ExportsSyntaxError extends IotTofuError {
  readonly line: number;
  constructor(line: number, message: string) {
    super('EXPORTS_SYNTAX', `exports line ${line}: ${message}`);
    this.line = line;
  }
}

export class InvalidExportError extends IotTofuError {
  constructor(message: string) {
    super('INVALID_EXPORT', message);
  }
}

/** The header we put on our own file, so an operator knows who writes it. */
export const MANAGED_HEADER = '# Managed by iot-tofu (pxetools / boot-server). Edits are overwritten.\n';

const SAFE_PATH = /^\/[^\s"\\#()]*$/;
const SAFE_HOST = /^[A-Za-z0-9.*?:/_@\-[\]]+$/;
const SAFE_OPTION = /^[A-Za-z0-9_=:.,/@-]+$/;

function checkEntry(entry: ExportEntry): void {
  if (!SAFE_PATH.test(entry.path))
    throw new InvalidExportError(
      `export path ${JSON.stringify(entry.path)} must be absolute and free of blanks, quotes, '#' and parentheses`,
    );
  if (entry.clients.length === 0) throw new InvalidExportError(`export ${entry.path} has no clients`);
  for (const client of entry.clients) {
    if (!SAFE_HOST.test(client.host))
      throw new InvalidExportError(`export client ${JSON.stringify(client.host)} is not a host, network or wildcard`);
    for (const option of client.options) {
      if (!SAFE_OPTION.test(option) || option.includes(','))
        throw new InvalidExportError(`export option ${JSON.stringify(option)} is not valid`);
    }
  }
}

/** Renders entries as exports(5) text, one line per path, our header first. Pure. */
export function renderExports(entries: readonly ExportEntry[], header: string = MANAGED_HEADER): string {
  let text = header;
  for (const entry of entries) {
    checkEntry(entry);
    const clients = entry.clients.map((c) => (c.options.length ? `${c.host}(${c.options.join(',')})` : c.host));
    text += `${entry.path} ${clients.join(' ')}\n`;
  }
  return text;
}

/**
 * Parses exports(5) text: comments, blank lines, backslash continuations, quoted paths, `-opts`
 * default options and several clients per line. Throws ExportsSyntaxError with the line number.
 */
export function parseExports(text: string): ExportEntry[] {
  const entries: ExportEntry[] = [];
  const rawLines = text.split('\n');
  for (let i = 0; i < rawLines.length; i++) {
    const startLine = i + 1;
    let line = rawLines[i] ?? '';
    while (line.endsWith('\\') && i + 1 < rawLines.length) {
      line = line.slice(0, -1) + ' ' + (rawLines[++i] ?? '');
    }
    const hash = line.indexOf('#');
    if (hash >= 0) line = line.slice(0, hash);
    line = line.trim();
    if (!line) continue;
    entries.push(parseLine(line, startLine));
  }
  return entries;
}

function parseLine(line: string, lineNo: number): ExportEntry {
  let rest = line;
  let path: string;
  if (rest.startsWith('"')) {
    const end = rest.indexOf('"', 1);
    if (end < 0) throw new ExportsSyntaxError(lineNo, 'unterminated quoted path');
    path = rest.slice(1, end);
    rest = rest.slice(end + 1);
  } else {
    const match = /^(\S+)/.exec(rest);
    path = match?.[1] ?? '';
    rest = rest.slice(path.length);
  }
  path = path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  if (!path.startsWith('/')) throw new ExportsSyntaxError(lineNo, `export path ${JSON.stringify(path)} is not absolute`);
  const clients: ExportClient[] = [];
  let defaults: string[] = [];
  for (const token of rest.trim().split(/\s+/).filter(Boolean)) {
    if (token.startsWith('-')) {
      defaults = token.slice(1).split(',').filter(Boolean);
      continue;
    }
    const match = /^([^()]*)(?:\(([^()]*)\))?$/.exec(token);
    if (!match) throw new ExportsSyntaxError(lineNo, `cannot read client ${JSON.stringify(token)}`);
    const host = match[1] || '*';
    const options = match[2] === undefined ? defaults : match[2].split(',').filter(Boolean);
    clients.push({ host, options });
  }
  if (clients.length === 0) clients.push({ host: '*', options: defaults });
  return { path, clients };
}

/** Replaces (or removes, with `clients` empty) the entries for `path`, keeping the others in order. */
export function withExport(entries: readonly ExportEntry[], path: string, clients: readonly ExportClient[]): ExportEntry[] {
  const others = entries.filter((e) => e.path !== path);
  return clients.length ? [...others, { path, clients }] : others;
}
