// Runs ManagedExports against the real exportfs inside a private mount namespace, so files written
// here (some broken on purpose) never reach the machine's /etc/exports.d, and other tests' exportfs
// runs cannot break this one. Started by exports.test.ts as
//   unshare -m --propagation private node --import tsx exportfs-sandbox.ts <workdir>
// and prints one JSON object with what it observed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileRunner } from '@iot-tofu/host-io';
import { ManagedExports, nfsHealth, withExport, type ExportfsIssue } from '../src/index.js';

const work = process.argv[2];
if (!work) throw new Error('usage: exportfs-sandbox.ts <workdir>');

// Everything exportfs reads or writes, replaced by private, empty copies.
execFileSync('mount', ['-t', 'tmpfs', 'iot-tofu-test', '/etc/exports.d']);
execFileSync('mount', ['-t', 'tmpfs', 'iot-tofu-test', '/var/lib/nfs']);
if (existsSync('/etc/exports')) {
  writeFileSync(join(work, 'empty-exports'), '');
  execFileSync('mount', ['--bind', join(work, 'empty-exports'), '/etc/exports']);
}

const PI_OPTIONS = ['rw', 'sync', 'no_subtree_check', 'no_root_squash'];
const file = '/etc/exports.d/iot-tofu.exports';
const foreign = '/etc/exports.d/someone-else.exports';
const warnings: Array<{ issues: string[] }> = [];
const logger = {
  debug() {},
  info() {},
  error() {},
  warn: (obj: object) => void ('issues' in obj && warnings.push(obj as { issues: string[] })),
};
const exports = new ManagedExports({ file, runner: execFileRunner, logger });
const root = join(work, 'nfs', '9f55bbfd');
mkdirSync(root, { recursive: true });
const clients = [{ host: '10.77.0.0/24', options: PI_OPTIONS }];

async function outcome(
  change: () => Promise<unknown>,
): Promise<{ ok: boolean; code?: string; message?: string; file: string; foreign?: ExportfsIssue[] }> {
  try {
    await change();
    return { ok: true, file: readFileSync(file, 'utf8'), ...(exports.foreignIssues ? { foreign: exports.foreignIssues.issues } : {}) };
  } catch (error) {
    return { ok: false, code: (error as { code?: string }).code, message: (error as Error).message, file: readFileSync(file, 'utf8') };
  }
}

const result: Record<string, unknown> = {};
result.accepted = await outcome(() => exports.update((e) => withExport(e, root, clients)));
result.exported = (await nfsHealth()).exported;
result.missingPath = await outcome(() => exports.update((e) => withExport(e, join(work, 'missing'), clients)));

// Someone else's file breaks: a bad keyword and a folder that is gone.
writeFileSync(foreign, `${join(work, 'nfs')} *(ro,bogusopt)\n/srv/iot-tofu-gone 10.0.0.0/8(ro,no_subtree_check)\n`);
const second = join(work, 'nfs', '0a1b2c3d');
mkdirSync(second, { recursive: true });
result.foreignBroken = await outcome(() => exports.update((e) => withExport(e, second, clients)));
result.exportedWithForeignBroken = (await nfsHealth()).exported.map((e) => e.path);
// Our own mistake still fails while the other file stays broken.
result.oursBrokenToo = await outcome(() => exports.update((e) => withExport(e, join(work, 'missing'), clients)));
result.warnings = warnings.map((w) => w.issues);
await exports.removeFile();
result.afterRemove = execFileSync('exportfs', ['-v'], { encoding: 'utf8' });
process.stdout.write(`${JSON.stringify(result)}\n`);
