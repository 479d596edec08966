import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { needs } from '@iot-tofu/test-kit';
import { afterAll, describe, expect, it } from 'vitest';
import { Fleet } from '../src/index.js';
import { makePiImage, recordingRunner, tempDir, treeManifest } from './helpers.js';

describe('setup from a Raspberry Pi OS image (no loop devices, no mounts)', {
  timeout: 120_000,
  ...needs('root', 'sfdisk', 'mkfs.vfat', 'mcopy', 'mkfs.ext4', 'e2fsck', 'xz', 'xattr'),
}, () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  for (const variant of [
    { label: 'ext4 (extents, 4k blocks, bookworm layout)', fs: 'ext4' as const, bookworm: true, xz: true },
    { label: 'ext2 with 1k blocks (legacy block maps, indirect blocks)', fs: 'ext2-1k' as const, bookworm: false, xz: false },
  ]) {
    it(`imports ${variant.label} with owners, modes, links, devices and xattrs intact`, async () => {
      const dir = tempDir('image');
      dirs.push(dir);
      const built = makePiImage(join(dir, 'build'), { fs: variant.fs, bookworm: variant.bookworm });
      let image = built.image;
      if (variant.xz) {
        execFileSync('xz', ['-0', '-T1', image]);
        image = `${image}.xz`;
      }
      const { runner, calls } = recordingRunner({ fakeExportfs: true });
      const fleet = await Fleet.open({
        tftpRoot: join(dir, 'tftpboot'),
        nfsRoot: join(dir, 'nfs'),
        stateDir: join(dir, 'state'),
        exportsFile: join(dir, 'exports'),
        exportsClients: '10.77.0.0/24',
        serverIp: '10.77.0.2',
        runner,
      });
      const phases = new Set<string>();
      const result = await fleet.setup({ base: 'lite', source: { kind: 'image', image } }, { onProgress: (p) => phases.add(p.phase) });
      await fleet.close();
      expect(result.base.layout).toBe(variant.bookworm ? 'bookworm' : 'legacy');
      expect(phases.has('extract-root')).toBe(true);
      // No loop device, no mount anywhere: only mcopy, mknod and setfattr ran.
      expect(new Set(calls.map((c) => c.file))).toEqual(new Set(['mcopy', 'mknod', 'setfattr', 'cp']));
      expect(treeManifest(join(dir, 'nfs', 'bases', 'lite'), { mtimes: true })).toEqual(treeManifest(built.root, { mtimes: true }));
      expect(readdirSync(join(dir, 'tftpboot', 'base')).sort()).toEqual(readdirSync(built.boot).sort());
      expect(readFileSync(join(dir, 'tftpboot', 'base', 'overlays', 'overlay_map.dtb'), 'utf8')).toBe('map');
      expect(existsSync(join(dir, 'tftpboot', 'bootcode.bin'))).toBe(true);
      // Nothing left behind in the scratch space.
      expect(readdirSync(join(dir, 'state')).sort()).toEqual(['bases', 'intents', 'locks', 'registry.json']);
      expect(readdirSync(join(dir, 'state', 'locks'))).toEqual([]);
      expect(readdirSync(join(dir, 'state', 'intents'))).toEqual([]);
    });
  }
});
