import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CommandRunner } from '@iot-tofu/host-io';
import { collect, needs, repoRoot, tsNodeArgs } from '@iot-tofu/test-kit';
import {
  ExportsSyntaxError,
  InvalidExportError,
  MANAGED_HEADER,
  ManagedExports,
  classifyExportfsStderr,
  exportfsFailureIsOurs,
  nfsHealth,
  parseExportfsVerbose,
  parseExports,
  renderExports,
  withExport,
  type ExportEntry,
} from '../src/index.js';

const PI_OPTIONS = ['rw', 'sync', 'no_subtree_check', 'no_root_squash'];

describe('renderExports / parseExports', () => {
  it('renders one line per path and parses it back', () => {
    const entries: ExportEntry[] = [
      { path: '/nfs/9f55bbfd', clients: [{ host: '192.168.10.0/24', options: PI_OPTIONS }] },
      {
        path: '/tftpboot/9f55bbfd',
        clients: [
          { host: '192.168.10.0/24', options: PI_OPTIONS },
          { host: '10.0.0.5', options: ['ro'] },
        ],
      },
    ];
    const text = renderExports(entries);
    expect(text).toBe(
      `${MANAGED_HEADER}/nfs/9f55bbfd 192.168.10.0/24(rw,sync,no_subtree_check,no_root_squash)\n/tftpboot/9f55bbfd 192.168.10.0/24(rw,sync,no_subtree_check,no_root_squash) 10.0.0.5(ro)\n`,
    );
    expect(parseExports(text)).toEqual(entries);
  });

  it.each([
    { text: '/nfs/a *(rw,sync)\n', entries: [{ path: '/nfs/a', clients: [{ host: '*', options: ['rw', 'sync'] }] }] },
    {
      text: '# comment\n\n/nfs/a host1 host2(ro) # trailing\n',
      entries: [
        {
          path: '/nfs/a',
          clients: [
            { host: 'host1', options: [] },
            { host: 'host2', options: ['ro'] },
          ],
        },
      ],
    },
    {
      text: '/nfs/a -rw,sync host1 host2(ro)\n',
      entries: [
        {
          path: '/nfs/a',
          clients: [
            { host: 'host1', options: ['rw', 'sync'] },
            { host: 'host2', options: ['ro'] },
          ],
        },
      ],
    },
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
    const start = [
      { path: '/a', clients: [{ host: '*', options: ['ro'] }] },
      { path: '/b', clients: [{ host: '*', options: [] }] },
    ];
    expect(withExport(start, '/a', [{ host: 'h', options: ['rw'] }])).toEqual([
      start[1],
      { path: '/a', clients: [{ host: 'h', options: ['rw'] }] },
    ]);
    expect(withExport(start, '/a', [])).toEqual([start[1]]);
  });

  it('parses exportfs -v, including paths long enough to wrap', () => {
    const text =
      '/nfs/9f55bbfd \t10.77.0.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,no_root_squash,no_all_squash)\n/a/very/long/path/that/wraps/onto/the/next/line\n\t\t<world>(ro)\n';
    expect(parseExportfsVerbose(text)).toEqual([
      {
        path: '/nfs/9f55bbfd',
        client: '10.77.0.0/24',
        options: ['sync', 'wdelay', 'hide', 'no_subtree_check', 'sec=sys', 'rw', 'no_root_squash', 'no_all_squash'],
      },
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
      expect(await nfsHealth({ runner, procRoot: dir })).toMatchObject({
        nfsdRunning: false,
        exported: [{ path: '/nfs/a', client: '10.0.0.0/24', options: ['rw'] }],
      });
      mkdirSync(join(dir, 'fs/nfsd'), { recursive: true });
      writeFileSync(join(dir, 'fs/nfsd/threads'), '8\n');
      expect(await nfsHealth({ runner, procRoot: dir })).toMatchObject({ nfsdRunning: true, nfsdDetail: '8 nfsd threads', servesV3: null });
      writeFileSync(join(dir, 'fs/nfsd/versions'), '-2 -3 +4 +4.1 +4.2\n');
      expect(await nfsHealth({ runner, procRoot: dir })).toMatchObject({ servesV3: false, nfsdDetail: expect.stringContaining('vers3=y') });
      writeFileSync(join(dir, 'fs/nfsd/versions'), '-2 +3 +4 +4.1 +4.2\n');
      expect(await nfsHealth({ runner, procRoot: dir })).toMatchObject({ servesV3: true, nfsdDetail: '8 nfsd threads' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Messages printed by the real exportfs (nfs-utils 2.6.2, Debian bookworm), generated in a private
// mount namespace with our file at /etc/exports.d/ours.exports exporting /srv/ours to 10.77.0.0/24.
const OURS = { file: '/etc/exports.d/ours.exports', paths: ['/srv/ours', '/srv/with space'], hosts: ['10.77.0.0/24', '10.77.0.0/33'] };
describe('classifyExportfsStderr: whose problem is an exportfs complaint', () => {
  it.each([
    [
      'bad keyword in our file',
      'exportfs: /etc/exports.d/ours.exports:1: unknown keyword "zzz"\n\n',
      [{ scope: 'ours', file: OURS.file, line: 1, message: '/etc/exports.d/ours.exports:1: unknown keyword "zzz"' }],
    ],
    [
      'bad keyword in a foreign file',
      'exportfs: /etc/exports.d/other.exports:1: unknown keyword "bogusopt"\n\n',
      [{ scope: 'foreign', file: '/etc/exports.d/other.exports', line: 1 }],
    ],
    [
      'bad keyword in /etc/exports',
      'exportfs: /etc/exports:1: unknown keyword "nope"\n\n',
      [{ scope: 'foreign', file: '/etc/exports', line: 1 }],
    ],
    ['syntax error in our file', 'exportfs: /etc/exports.d/ours.exports:1: syntax error: bad option list\n', [{ scope: 'ours', line: 1 }]],
    [
      'bad fsid ("file: line" form)',
      'exportfs: /etc/exports.d/ours.exports: 2: bad fsid "fsid=abc"\n\n',
      [{ scope: 'ours', file: OURS.file, line: 2 }],
    ],
    ['bad fsid in a foreign file', 'exportfs: /etc/exports.d/x.exports: 7: bad fsid "fsid=abc"\n', [{ scope: 'foreign', line: 7 }]],
    ['our path is missing', 'exportfs: Failed to stat /srv/ours: No such file or directory\n', [{ scope: 'ours', path: '/srv/ours' }]],
    [
      'our path with a blank is missing',
      'exportfs: Failed to stat /srv/with space: No such file or directory\n',
      [{ scope: 'ours', path: '/srv/with space' }],
    ],
    [
      'a foreign path is missing',
      'exportfs: Failed to stat /srv/doesnotexist: No such file or directory\n',
      [{ scope: 'foreign', path: '/srv/doesnotexist' }],
    ],
    ['a relative foreign path', 'exportfs: Failed to stat relative: No such file or directory\n', [{ scope: 'foreign', path: 'relative' }]],
    ['our path is a file', 'exportfs: /srv/ours is not a directory. Remote access will fail\n', [{ scope: 'ours', path: '/srv/ours' }]],
    [
      'a foreign path is a file',
      'exportfs: /tmp/afile is not a directory. Remote access will fail\n',
      [{ scope: 'foreign', path: '/tmp/afile' }],
    ],
    [
      'a bad prefix in our clients',
      "exportfs: Invalid prefix `33' for 10.77.0.0/33\nexportfs: Invalid prefix `33' for 10.77.0.0/33\n",
      [
        { scope: 'ours', host: '10.77.0.0/33' },
        { scope: 'ours', host: '10.77.0.0/33' },
      ],
    ],
    ['a bad prefix elsewhere', "exportfs: Invalid prefix `40' for 10.0.0.0/40\n", [{ scope: 'foreign', host: '10.0.0.0/40' }]],
    [
      'warnings with continuation lines',
      "exportfs: No options for /srv/other 10.0.0.0/8: suggest 10.0.0.0/8(sync) to avoid warning\nexportfs: /etc/exports.d/ours.exports [1]: Neither 'subtree_check' or 'no_subtree_check' specified for export \"10.0.0.0/8:/srv/ours\".\n  Assuming default behaviour ('no_subtree_check').\n  NOTE: this default has changed since nfs-utils version 1.0.x\n\n",
      [
        { scope: 'foreign', path: '/srv/other', warning: true },
        {
          scope: 'ours',
          file: OURS.file,
          line: 1,
          warning: true,
          message: expect.stringMatching(
            /specified for export "10\.0\.0\.0\/8:\/srv\/ours"\.; Assuming default behaviour \('no_subtree_check'\)\.; NOTE: /,
          ),
        },
      ],
    ],
    [
      'ours and a foreign one at once',
      'exportfs: /etc/exports.d/ours.exports:1: unknown keyword "zzz"\n\nexportfs: Failed to stat /srv/gone2: No such file or directory\n',
      [{ scope: 'ours' }, { scope: 'foreign', path: '/srv/gone2' }],
    ],
    [
      'something that names nothing',
      'exportfs: could not open /var/lib/nfs/.etab.lock for locking: errno 13 (Permission denied)\n',
      [{ scope: 'unknown' }],
    ],
    ['the runner could not start exportfs', 'spawn exportfs ENOENT', [{ scope: 'unknown', message: 'spawn exportfs ENOENT' }]],
  ])('%s', (_label, stderr, expected) => {
    const issues = classifyExportfsStderr(stderr, OURS);
    expect(issues).toEqual(expected.map((e) => expect.objectContaining(e)));
    expect(issues.map((i) => i.warning ?? false)).toEqual(expected.map((e) => 'warning' in e));
  });

  it.each([
    ['nothing said', [], true],
    ['only foreign', [{ message: 'x', scope: 'foreign' }], false],
    [
      'foreign and ours',
      [
        { message: 'x', scope: 'foreign' },
        { message: 'y', scope: 'ours' },
      ],
      true,
    ],
    [
      'foreign and unknown',
      [
        { message: 'x', scope: 'foreign' },
        { message: 'y', scope: 'unknown' },
      ],
      true,
    ],
    [
      'a foreign error and a warning about ours',
      [
        { message: 'x', scope: 'foreign' },
        { message: 'y', scope: 'ours', warning: true },
      ],
      false,
    ],
    ['only warnings (nothing explains the failure)', [{ message: 'x', scope: 'foreign', warning: true }], true],
  ] as const)('a failure with %s fails our change: %s', (_label, issues, fails) => {
    expect(exportfsFailureIsOurs(issues)).toBe(fails);
  });

  it('ManagedExports keeps a change whose only problem is a foreign file, and reports it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-exports-'));
    try {
      const file = join(dir, 'iot-tofu.exports');
      let stderr = '';
      const runner: CommandRunner = async () => {
        if (stderr) throw Object.assign(new Error('exit 1'), { stderr });
        return { stdout: '', stderr: '' };
      };
      const warnings: unknown[] = [];
      const exports = new ManagedExports({
        file,
        runner,
        clock: () => new Date(7000),
        logger: { debug() {}, info() {}, error() {}, warn: (obj) => void warnings.push(obj) },
      });
      stderr = 'exportfs: /etc/exports.d/other.exports:3: unknown keyword "bogus"\n';
      await exports.update((e) => withExport(e, '/nfs/a', [{ host: '10.0.0.0/24', options: PI_OPTIONS }]));
      expect(readFileSync(file, 'utf8')).toContain('/nfs/a 10.0.0.0/24(');
      expect(exports.foreignIssues).toEqual({
        at: new Date(7000).toISOString(),
        issues: [expect.objectContaining({ scope: 'foreign', file: '/etc/exports.d/other.exports', line: 3 })],
      });
      expect(warnings).toEqual([expect.objectContaining({ issues: ['/etc/exports.d/other.exports:3: unknown keyword "bogus"'] })]);
      // Our own path failing still fails and restores, even next to the foreign complaint.
      stderr += 'exportfs: Failed to stat /nfs/b: No such file or directory\n';
      await expect(exports.update((e) => withExport(e, '/nfs/b', [{ host: '10.0.0.0/24', options: PI_OPTIONS }]))).rejects.toMatchObject({
        code: 'EXPORTFS_FAILED',
        message: 'exportfs -ra failed: exportfs: Failed to stat /nfs/b: No such file or directory',
      });
      expect(readFileSync(file, 'utf8')).not.toContain('/nfs/b');
      stderr = '';
      await exports.reload();
      expect(exports.foreignIssues).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The real exportfs in a private mount namespace (tmpfs over /etc/exports.d and /var/lib/nfs, an
// empty /etc/exports): the broken files this writes on purpose are invisible to every other test,
// and theirs to it, while exportfs still validates for real.
describe(
  'generated exports validated by the real exportfs (docs/lab.md 4), private mount namespace',
  needs('root', 'exportfs', 'unshare', 'mount'),
  () => {
    it('accepts our file, rejects our missing path, tolerates a broken foreign file, forgets us after removal', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-exportfs-'));
      try {
        const hostFilesBefore = readdirSync('/etc/exports.d').sort();
        const child = spawn(
          'unshare',
          ['-m', '--propagation', 'private', process.execPath, ...tsNodeArgs, 'packages/nfs-server-lite/test/exportfs-sandbox.ts', dir],
          { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        const run = await collect(child, 30_000);
        expect(run.code, run.stderr).toBe(0);
        const result = JSON.parse(run.stdout) as Record<string, any>;
        const root = join(dir, 'nfs', '9f55bbfd');
        const second = join(dir, 'nfs', '0a1b2c3d');
        expect(result.accepted).toMatchObject({ ok: true });
        expect(result.exported).toContainEqual({
          path: root,
          client: '10.77.0.0/24',
          options: expect.arrayContaining(['rw', 'sync', 'no_subtree_check', 'no_root_squash']),
        });
        expect(result.missingPath).toMatchObject({
          ok: false,
          code: 'EXPORTFS_FAILED',
          message: `exportfs -ra failed: exportfs: Failed to stat ${join(dir, 'missing')}: No such file or directory`,
          file: result.accepted.file,
        });
        expect(result.foreignBroken).toMatchObject({
          ok: true,
          foreign: [
            {
              scope: 'foreign',
              file: '/etc/exports.d/someone-else.exports',
              line: 1,
              message: '/etc/exports.d/someone-else.exports:1: unknown keyword "bogusopt"',
            },
          ],
        });
        expect(result.foreignBroken.file).toContain(second);
        expect(result.exportedWithForeignBroken).toEqual(expect.arrayContaining([root, second]));
        expect(result.oursBrokenToo).toMatchObject({ ok: false, code: 'EXPORTFS_FAILED', file: result.foreignBroken.file });
        expect(result.warnings).toContainEqual(['/etc/exports.d/someone-else.exports:1: unknown keyword "bogusopt"']);
        expect(result.afterRemove).not.toContain(dir);
        // Nothing leaked into the machine's exports.
        expect(readdirSync('/etc/exports.d').sort()).toEqual(hostFilesBefore);
        expect(execFileSync('exportfs', ['-v'], { encoding: 'utf8' })).not.toContain(dir);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
