import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { havePeers } from '../../../test/lab/index.js';
import {
  ExportsSyntaxError,
  InvalidExportError,
  MANAGED_HEADER,
  ManagedExports,
  execFileRunner,
  nfsHealth,
  parseExportfsVerbose,
  parseExports,
  renderExports,
  withExport,
  type CommandRunner,
  type ExportEntry,
} from '../src/index.js';

const PI_OPTIONS = ['rw', 'sync', 'no_subtree_check', 'no_root_squash'];

describe('renderExports / parseExports', () => {
  it('renders one line per path and parses it back', () => {
    const entries: ExportEntry[] = [
      { path: '/nfs/9f55bbfd', clients: [{ host: '192.168.10.0/24', options: PI_OPTIONS }] },
      { path: '/tftpboot/9f55bbfd', clients: [{ host: '192.168.10.0/24', options: PI_OPTIONS }, { host: '10.0.0.5', options: ['ro'] }] },
    ];
    const text = renderExports(entries);
    expect(text).toBe(
      `${MANAGED_HEADER}/nfs/9f55bbfd 192.168.10.0/24(rw,sync,no_subtree_check,no_root_squash)\n/tftpboot/9f55bbfd 192.168.10.0/24(rw,sync,no_subtree_check,no_root_squash) 10.0.0.5(ro)\n`,
    );
    expect(parseExports(text)).toEqual(entries);
  });

  it.each([
    { text: '/nfs/a *(rw,sync)\n', entries: [{ path: '/nfs/a', clients: [{ host: '*', options: ['rw', 'sync'] }] }] },
    { text: '# comment\n\n/nfs/a host1 host2(ro) # trailing\n', entries: [{ path: '/nfs/a', clients: [{ host: 'host1', options: [] }, { host: 'host2', options: ['ro'] }] }] },
    { text: '/nfs/a -rw,sync host1 host2(ro)\n', entries: [{ path: '/nfs/a', clients: [{ host: 'host1', options: ['rw', 'sync'] }, { host: 'host2', options: ['ro'] }] }] },
    { text: '"/nfs/with space" *(ro)\n', entries: [{ path: '/nfs/with space', clients: [{ host: '*', options: ['ro'] }] }] },
    { text: '/nfs/oct\\040al *(ro)\n', entries: [{ path: '/nfs/oct al', clients: [{ host: '*', options: ['ro'] }] }] },
    { text: '/nfs/cont \\\n  10.0.0.0/8(rw)\n', entries: [{ path: '/nfs/cont', clients: [{ host: '10.0.0.0/8', options: ['rw'] }] }] },
    { text: '/nfs/bare\n', entries: [{ path: '/nfs/bare', clients: [{ host: '*', options: [] }] }] },
  ])('parses $text', ({ text, entries }) => {
    expect(parseExports(text)).toEqual(entries);
  });

  it.each([
    ['relative path', 'nfs/a *(rw)\n', 1],
    ['unterminated quote', '\n"/nfs/a *(rw)\n', 2],
    ['bad client', '/nfs/a host(rw)(ro)\n', 1],
  ])('rejects a %s with the line number', (_label, text, line) => {
    try {
      parseExports(text);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ExportsSyntaxError);
      expect((error as ExportsSyntaxError).line).toBe(line);
    }
  });

  it.each([
    { path: 'relative', host: '*', options: [] },
    { path: '/with space', host: '*', options: [] },
    { path: '/nfs/a', host: 'bad host', options: [] },
    { path: '/nfs/a', host: '*', options: ['rw,ro'] },
    { path: '/nfs/a#x', host: '*', options: [] },
  ])('refuses to render an unsafe entry %o', ({ path, host, options }) => {
    expect(() => renderExports([{ path, clients: [{ host, options }] }])).toThrow(InvalidExportError);
  });

  it('withExport replaces or removes the entries of one path', () => {
    const start = [{ path: '/a', clients: [{ host: '*', options: ['ro'] }] }, { path: '/b', clients: [{ host: '*', options: [] }] }];
    expect(withExport(start, '/a', [{ host: 'h', options: ['rw'] }])).toEqual([start[1], { path: '/a', clients: [{ host: 'h', options: ['rw'] }] }]);
    expect(withExport(start, '/a', [])).toEqual([start[1]]);
  });

  it('parses exportfs -v, including paths long enough to wrap', () => {
    const text = '/nfs/9f55bbfd \t10.77.0.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,no_root_squash,no_all_squash)\n/a/very/long/path/that/wraps/onto/the/next/line\n\t\t<world>(ro)\n';
    expect(parseExportfsVerbose(text)).toEqual([
      { path: '/nfs/9f55bbfd', client: '10.77.0.0/24', options: ['sync', 'wdelay', 'hide', 'no_subtree_check', 'sec=sys', 'rw', 'no_root_squash', 'no_all_squash'] },
      { path: '/a/very/long/path/that/wraps/onto/the/next/line', client: '<world>', options: ['ro'] },
    ]);
  });
});

describe('ManagedExports with an injected runner', () => {
  it('writes atomically, reloads, and restores the previous file when exportfs fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-exports-'));
    try {
      const file = join(dir, 'sub', 'iot-tofu.exports');
      let fail = false;
      const calls: string[] = [];
      const runner: CommandRunner = async (cmd, args) => {
        calls.push(`${cmd} ${args.join(' ')}`);
        if (fail) throw Object.assign(new Error('exit 1'), { stderr: 'exportfs: bad thing\n' });
        return { stdout: '', stderr: '' };
      };
      const exports = new ManagedExports({ file, runner });
      await exports.update((e) => withExport(e, '/nfs/a', [{ host: '10.0.0.0/24', options: PI_OPTIONS }]));
      expect(calls).toEqual(['exportfs -ra']);
      const good = readFileSync(file, 'utf8');
      fail = true;
      await expect(exports.update((e) => withExport(e, '/nfs/b', [{ host: '10.0.0.0/24', options: PI_OPTIONS }]))).rejects.toMatchObject({
        code: 'EXPORTFS_FAILED',
        message: 'exportfs -ra failed: exportfs: bad thing',
      });
      expect(readFileSync(file, 'utf8')).toBe(good);
      // An unchanged file does not call exportfs again.
      fail = false;
      calls.length = 0;
      await exports.update((e) => e);
      expect(calls).toEqual([]);
      await exports.removeFile();
      expect(existsSync(file)).toBe(false);
      expect(calls).toEqual(['exportfs -ra']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports nfsd down and the active exports', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-proc-'));
    try {
      const runner: CommandRunner = async () => ({ stdout: '/nfs/a \t10.0.0.0/24(rw)\n', stderr: '' });
      expect(await nfsHealth({ runner, procRoot: dir })).toMatchObject({ nfsdRunning: false, exported: [{ path: '/nfs/a', client: '10.0.0.0/24', options: ['rw'] }] });
      mkdirSync(join(dir, 'fs/nfsd'), { recursive: true });
      writeFileSync(join(dir, 'fs/nfsd/threads'), '8\n');
      expect(await nfsHealth({ runner, procRoot: dir })).toMatchObject({ nfsdRunning: true, nfsdDetail: '8 nfsd threads' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(process.geteuid?.() === 0 && havePeers('exportfs'))('generated exports validated by the real exportfs (LAB.md 4)', () => {
  it('exportfs accepts our file, shows our options, rejects a missing path, and forgets us after removal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-exportfs-'));
    mkdirSync('/etc/exports.d', { recursive: true });
    const file = `/etc/exports.d/iot-tofu-test-${randomBytes(4).toString('hex')}.exports`;
    const exports = new ManagedExports({ file, runner: execFileRunner });
    try {
      const root = join(dir, 'nfs', '9f55bbfd');
      mkdirSync(root, { recursive: true });
      await exports.update((e) => withExport(e, root, [{ host: '10.77.0.0/24', options: PI_OPTIONS }]));
      const health = await nfsHealth();
      expect(health.exported).toContainEqual({ path: root, client: '10.77.0.0/24', options: expect.arrayContaining(['rw', 'sync', 'no_subtree_check', 'no_root_squash']) });
      const before = readFileSync(file, 'utf8');
      await expect(exports.update((e) => withExport(e, join(dir, 'missing'), [{ host: '10.77.0.0/24', options: PI_OPTIONS }]))).rejects.toMatchObject({ code: 'EXPORTFS_FAILED' });
      expect(readFileSync(file, 'utf8')).toBe(before);
      await exports.removeFile();
      expect(execFileSync('exportfs', ['-v'], { encoding: 'utf8' })).not.toContain(root);
    } finally {
      rmSync(file, { force: true });
      execFileSync('exportfs', ['-ra']);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
