// The API's code → status table covers every error code the project throws: the unions it imports
// (the fleet's, tftp's file reasons) are checked by the compiler, the rest by reading the sources.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IotTofuError } from '@iot-tofu/errors';
import { FleetError } from '@iot-tofu/fleet';
import { InvalidMacError, InvalidSerialError } from '@iot-tofu/rpi';
import { TftpFileError } from '@iot-tofu/tftp';
import { HTTP_STATUS_BY_CODE, statusForError } from '../src/api.js';

const PACKAGES = join(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** `new XError('CODE'`, `super('CODE'` (also across a line break) and the API's `sendError(reply, 'CODE'`. */
const LITERAL_CODE = /(?:new\s+[A-Za-z]*Error|super)\(\s*'([A-Z][A-Z0-9_]+)'|sendError\(\s*\w+,\s*'([A-Z][A-Z0-9_]+)'/g;
/** A code built from a template: `super(\`TFTP_${…}\``; we keep its fixed prefix. */
const TEMPLATE_CODE = /(?:new\s+[A-Za-z]*Error|super)\(\s*`([A-Z][A-Z0-9_]*)\$\{/g;

/** Codes made from templates, each typed from its union in errors.ts (TftpFileCode). */
const TEMPLATE_FAMILIES = ['TFTP_'];

interface Site {
  code: string;
  where: string;
}

function scan(): { literal: Site[]; template: Site[] } {
  const literal: Site[] = [];
  const template: Site[] = [];
  const packageDirs = readdirSync(PACKAGES, { withFileTypes: true }).filter((entry) => entry.isDirectory());
  for (const pkg of packageDirs) {
    let files: string[];
    try {
      files = sourceFiles(join(PACKAGES, pkg.name, 'src'));
    } catch {
      continue; // a package without src/
    }
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const where = (index: number) => `${relative(PACKAGES, file)}:${text.slice(0, index).split('\n').length}`;
      for (const match of text.matchAll(LITERAL_CODE)) literal.push({ code: (match[1] ?? match[2])!, where: where(match.index) });
      for (const match of text.matchAll(TEMPLATE_CODE)) template.push({ code: match[1]!, where: where(match.index) });
    }
  }
  return { literal, template };
}

describe('error code → HTTP status table', () => {
  const { literal, template } = scan();
  const table: Record<string, number> = HTTP_STATUS_BY_CODE;

  it('reads the codes the fleet, the validators and the API throw (the scan itself works)', () => {
    const found = new Set(literal.map((site) => site.code));
    for (const code of ['PI_EXISTS', 'BASE_IN_USE', 'INVALID_SERIAL', 'INVALID_MAC', 'INVALID_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND']) {
      expect(found, code).toContain(code);
    }
  });

  it('has a status for every code thrown in packages/*/src', () => {
    const missing = literal.filter((site) => !Object.hasOwn(table, site.code)).map((site) => `${site.code} (${site.where})`);
    expect(missing).toEqual([]);
  });

  it('knows every code made from a template, and has rows for it', () => {
    const unknown = template.filter((site) => !TEMPLATE_FAMILIES.includes(site.code)).map((site) => `${site.code}… (${site.where})`);
    expect(unknown).toEqual([]);
    for (const family of TEMPLATE_FAMILIES)
      expect(
        Object.keys(table).some((code) => code.startsWith(family)),
        family,
      ).toBe(true);
    expect(statusForError(new TftpFileError('not-found', 'File not found'))).toBe(500);
    expect(Object.hasOwn(table, new TftpFileError('access-denied', 'Access violation').code)).toBe(true);
  });

  it('gives each error the status of its code; anything unknown is a 500', () => {
    expect(statusForError(new InvalidSerialError('xyz'))).toBe(400);
    expect(statusForError(new InvalidMacError('xyz'))).toBe(400);
    expect(statusForError(new FleetError('PI_NOT_FOUND', 'no such Pi'))).toBe(404);
    expect(statusForError(new FleetError('BASE_IN_USE', 'used'))).toBe(409);
    expect(statusForError(new FleetError('NOT_ROOT', 'needs root'))).toBe(403);
    expect(statusForError(new FleetError('LOCKED', 'busy'))).toBe(503);
    expect(statusForError(new FleetError('IMPORT_FAILED', 'bad image'))).toBe(422);
    expect(statusForError(new IotTofuError('SOMETHING_NEW', 'not in the table'))).toBe(500);
    expect(statusForError(new Error('plain'))).toBe(500);
    expect(statusForError('a string')).toBe(500);
  });

  it('uses only error statuses', () => {
    for (const [code, status] of Object.entries(table)) expect(status >= 400 && status <= 599, code).toBe(true);
  });
});
