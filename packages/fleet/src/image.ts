import { spawn } from 'node:child_process';
import { mkdir, open, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DecodeError } from '@iot-tofu/errors';
import { FleetError } from './errors.js';
import { extractExt4 } from './ext4-extract.js';
import { decodeMbr, findPiPartitions } from './mbr.js';
import type { CommandRunner } from '@iot-tofu/host-io';
import type { FleetStep, Progress } from './types.js';

/** Where an import writes and what it may use (import.ts fills it for every source kind). */
export interface ImportContext {
  bootDest: string;
  rootDest: string;
  /** A private temp folder (decompressed images go here); deleted by the caller. */
  scratch: string;
  runner: CommandRunner;
  step: (step: FleetStep) => Promise<void>;
  onProgress?: ((progress: Progress) => void) | undefined;
}

/** Streams `xz -dc image` into `dest` (a file descriptor handed to xz: no copy through Node). */
async function decompressXz(image: string, dest: string): Promise<void> {
  const out = await open(dest, 'wx', 0o600);
  try {
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      const child = spawn('xz', ['--decompress', '--stdout', '--', image], { stdio: ['ignore', out.fd, 'pipe'] });
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`xz exited ${code}: ${stderr.trim()}`))));
    });
  } finally {
    await out.close();
  }
}

/**
 * Imports a Raspberry Pi OS image without loop devices or mounts: the MBR is decoded here, the
 * FAT boot partition is copied out with mtools (`mcopy -i image@@offset`), the ext4 root is read
 * by our own ext4 reader. `.img.xz` is decompressed into the scratch folder first.
 */
export async function importImage(image: string, context: ImportContext): Promise<void> {
  let raw = image;
  try {
    await stat(image);
  } catch (error) {
    throw new FleetError('IMPORT_FAILED', `cannot read image ${image}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {
      cause: error,
    });
  }
  if (image.endsWith('.xz')) {
    raw = join(context.scratch, basename(image).replace(/\.xz$/, ''));
    context.onProgress?.({ phase: 'decompress', done: 0, total: 0 });
    try {
      await decompressXz(image, raw);
    } catch (error) {
      throw new FleetError('IMPORT_FAILED', `cannot decompress ${image}: ${(error as Error).message}`, { cause: error });
    }
  }
  let parts: ReturnType<typeof findPiPartitions>;
  const handle = await open(raw, 'r');
  try {
    const sector = Buffer.alloc(512);
    const { bytesRead } = await handle.read(sector, 0, 512, 0);
    parts = findPiPartitions(decodeMbr(sector.subarray(0, bytesRead)));
  } catch (error) {
    if (error instanceof DecodeError)
      throw new FleetError('IMPORT_FAILED', `${image} has no usable MBR partition table: ${error.message}`, { cause: error });
    throw error;
  } finally {
    await handle.close();
  }
  if (!parts) throw new FleetError('IMPORT_FAILED', `${image} needs a FAT boot partition and a Linux (0x83) root partition`);
  const size = (await stat(raw)).size;
  for (const part of [parts.boot, parts.root]) {
    if (part.offset + part.length > size)
      throw new FleetError('IMPORT_FAILED', `partition ${part.index} of ${image} ends past the end of the image (truncated download?)`);
  }

  await context.step('setup:boot');
  await mkdir(context.bootDest, { mode: 0o755 });
  context.onProgress?.({ phase: 'extract-boot', done: 0, total: parts.boot.length });
  try {
    await context.runner('mcopy', ['-s', '-p', '-m', '-n', '-i', `${raw}@@${parts.boot.offset}`, '::/', `${context.bootDest}/`]);
  } catch (error) {
    throw new FleetError('IMPORT_FAILED', `cannot copy the boot partition of ${image}: ${(error as Error).message}`, { cause: error });
  }

  await context.step('setup:root');
  let done = 0;
  let total = parts.root.length;
  try {
    await extractExt4(raw, parts.root.offset, context.rootDest, {
      runner: context.runner,
      // Used blocks (data plus metadata) are the best size estimate before walking the tree.
      onStart: (used) => (total = used),
      onBytes: (bytes) => {
        done += bytes;
        context.onProgress?.({ phase: 'extract-root', done, total });
      },
    });
  } catch (error) {
    if (error instanceof DecodeError)
      throw new FleetError('IMPORT_FAILED', `the root partition of ${image} cannot be read: ${error.message}`, { cause: error });
    throw error;
  }
}
