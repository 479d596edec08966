// Builds the installable package: `npm run package` → iot-tofu-<version>.tgz, which
//   sudo npm install -g ./iot-tofu-<version>.tgz
// turns into `boot-server`, `pxetools` and `rpi-sim` on the PATH, with no repository around and no
// registry access at install time: the tarball bundles the built workspace packages and every
// runtime dependency (bundleDependencies).
//
//   node scripts/pack.mjs [--out DIR]     (default: the repository root; dist/ must be built)
//
// Steps, in a temporary staging folder:
//   1. packaging/iot-tofu (package.json with the bin entries, bin/ wrappers) + the README;
//   2. `npm install --omit=dev` of the third-party runtime dependencies of the three CLIs, at the
//      versions package-lock.json pins (from npm's cache when it has them);
//   3. each workspace package the CLIs need, copied to node_modules/@iot-tofu/<name> (package.json
//      without the source-only export condition and dev fields, dist/ without build info, web/ and
//      prebuilds/ when there are, README);
//   4. every dependency listed in bundleDependencies, then `npm pack`.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const out = resolve(outIndex >= 0 ? args[outIndex + 1] : repo);
if (outIndex >= 0 && !args[outIndex + 1]) throw new Error('--out needs a folder');

const SCOPE = '@iot-tofu/';
const ENTRY_PACKAGES = ['boot-server', 'pxetools', 'rpi-sim'];

/** Workspace packages by their npm name. */
const workspaces = new Map(
  readdirSync(join(repo, 'packages'))
    .filter((dir) => existsSync(join(repo, 'packages', dir, 'package.json')))
    .map((dir) => {
      const manifest = readJson(join(repo, 'packages', dir, 'package.json'));
      return [manifest.name, { dir: join(repo, 'packages', dir), manifest }];
    }),
);

// The closure of workspace packages the CLIs import, and the third-party packages they name.
const needed = new Set();
const thirdParty = new Map();
const visit = (name) => {
  if (needed.has(name)) return;
  const ws = workspaces.get(name);
  if (!ws) throw new Error(`${name} is not a workspace package`);
  needed.add(name);
  for (const [dep, range] of Object.entries(ws.manifest.dependencies ?? {})) {
    if (dep.startsWith(SCOPE)) visit(dep);
    else thirdParty.set(dep, range);
  }
};
for (const name of ENTRY_PACKAGES) visit(SCOPE + name);
for (const name of needed) {
  if (!existsSync(join(workspaces.get(name).dir, 'dist'))) throw new Error(`${name} has no dist/: run npm run build first`);
}

// The versions the repository's lockfile pins, so the package runs what the tests ran.
const lock = readJson(join(repo, 'package-lock.json'));
const pinned = {};
for (const [dep, range] of [...thirdParty].sort(([a], [b]) => a.localeCompare(b))) {
  pinned[dep] = lock.packages?.[`node_modules/${dep}`]?.version ?? range;
}

const staging = mkdtempSync(join(tmpdir(), 'iot-tofu-pack-'));
try {
  cpSync(join(repo, 'packaging', 'iot-tofu'), staging, { recursive: true });
  cpSync(join(repo, 'README.md'), join(staging, 'README.md'));
  const template = readJson(join(staging, 'package.json'));

  writeFileSync(join(staging, 'package.json'), `${JSON.stringify({ ...template, dependencies: pinned }, null, 2)}\n`);
  execFileSync(
    npm,
    ['install', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', '--prefer-offline', '--loglevel=error'],
    { cwd: staging, stdio: ['ignore', 'inherit', 'inherit'] },
  );

  const version = template.version;
  for (const name of needed) {
    const { dir, manifest } = workspaces.get(name);
    const dest = join(staging, 'node_modules', name);
    mkdirSync(dest, { recursive: true });
    cpSync(join(dir, 'dist'), join(dest, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.tsbuildinfo') });
    if (existsSync(join(dir, 'README.md'))) cpSync(join(dir, 'README.md'), join(dest, 'README.md'));
    // Static files a package reads at run time beside dist/ (boot-server's fleet page).
    if (existsSync(join(dir, 'web'))) cpSync(join(dir, 'web'), join(dest, 'web'), { recursive: true });
    // Prebuilt native addons beside dist/ (tftp's transfer socket, issue 14: src/native-socket.ts loads them).
    if (existsSync(join(dir, 'prebuilds'))) cpSync(join(dir, 'prebuilds'), join(dest, 'prebuilds'), { recursive: true });
    const exportsField = Object.fromEntries(
      Object.entries(manifest.exports ?? {}).map(([key, conditions]) => [
        key,
        typeof conditions === 'object'
          ? Object.fromEntries(Object.entries(conditions).filter(([c]) => c !== '@iot-tofu/source'))
          : conditions,
      ]),
    );
    const dependencies = Object.fromEntries(
      Object.entries(manifest.dependencies ?? {}).map(([dep, range]) => [dep, dep.startsWith(SCOPE) ? version : range]),
    );
    const { devDependencies: _dev, scripts: _scripts, ...rest } = manifest;
    writeFileSync(join(dest, 'package.json'), `${JSON.stringify({ ...rest, version, exports: exportsField, dependencies }, null, 2)}\n`);
  }

  const dependencies = { ...pinned, ...Object.fromEntries([...needed].sort().map((name) => [name, version])) };
  const final = { ...template, dependencies, bundleDependencies: Object.keys(dependencies) };
  writeFileSync(join(staging, 'package.json'), `${JSON.stringify(final, null, 2)}\n`);

  mkdirSync(out, { recursive: true });
  const packed = execFileSync(npm, ['pack', '--json', '--pack-destination', out, '--loglevel=error'], {
    cwd: staging,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [info] = JSON.parse(packed);
  process.stdout.write(`${join(out, info.filename)}\n`);
  process.stderr.write(
    `${info.filename}: ${info.entryCount} files, ${(info.size / 1024 / 1024).toFixed(1)} MB packed, ${(info.unpackedSize / 1024 / 1024).toFixed(1)} MB unpacked; bundles ${needed.size} workspace packages and ${thirdParty.size} direct dependencies\n`,
  );
} finally {
  rmSync(staging, { recursive: true, force: true });
}
