import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileRunner, type CommandRunner } from '@iot-tofu/host-io';
import { allRequiredBootFiles } from '@iot-tofu/rpi';

/**
 * The real runner except for exportfs, which answers as if every export applied: tests of our own
 * verbs keep their exports in a temp file that the real exportfs would never read anyway (the
 * e2e and multiprocess tests run the real one over /etc/exports.d).
 */
export const withoutExportfs: CommandRunner = async (file, args, options) =>
  file === 'exportfs' ? { stdout: '', stderr: '' } : execFileRunner(file, args, options);

/**
 * Folders for one test: TFTP root, NFS root, state dir, a tiny base (every boot file a supported
 * model needs, a root with /etc) and a unique exports file. close() removes all of it.
 */
export interface FleetFixture {
  dir: string;
  tftpRoot: string;
  nfsRoot: string;
  stateDir: string;
  exportsFile: string;
  bootDir: string;
  rootfsDir: string;
  close(): void;
}

export function fleetFixture(options: { exportsInEtc?: boolean; kernelBytes?: number } = {}): FleetFixture {
  const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-bs-'));
  const bootDir = join(dir, 'src-boot');
  const rootfsDir = join(dir, 'src-root');
  mkdirSync(join(bootDir, 'overlays'), { recursive: true });
  for (const file of allRequiredBootFiles()) {
    mkdirSync(join(bootDir, file, '..'), { recursive: true });
    // The kernel is big enough to count as a large transfer; the rest stay tiny.
    const size = /kernel/.test(file) ? (options.kernelBytes ?? 300_000) : 2000;
    writeFileSync(join(bootDir, file), Buffer.alloc(size, file.length));
  }
  writeFileSync(join(bootDir, 'config.txt'), '[all]\narm_64bit=1\n');
  mkdirSync(join(rootfsDir, 'etc'), { recursive: true });
  mkdirSync(join(rootfsDir, 'boot'), { recursive: true });
  writeFileSync(join(rootfsDir, 'etc/hostname'), 'raspberrypi\n');
  writeFileSync(join(rootfsDir, 'etc/fstab'), 'proc /proc proc defaults 0 0\n');
  // exportfs only reads /etc/exports and /etc/exports.d/*.exports: the e2e test validates for real.
  const exportsFile = options.exportsInEtc
    ? `/etc/exports.d/iot-tofu-test-${randomBytes(4).toString('hex')}.exports`
    : join(dir, 'iot-tofu.exports');
  return {
    dir,
    tftpRoot: join(dir, 'tftpboot'),
    nfsRoot: join(dir, 'nfs'),
    stateDir: join(dir, 'state'),
    exportsFile,
    bootDir,
    rootfsDir,
    close() {
      // Exports first: an exports line whose folder is already gone makes every `exportfs -ra` on
      // the machine fail, including other tests' runs.
      if (options.exportsInEtc) {
        rmSync(exportsFile, { force: true });
        try {
          execFileSync('exportfs', ['-ra'], { stdio: 'ignore' });
        } catch {
          // exportfs complains about other tests' files; ours is gone either way
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
