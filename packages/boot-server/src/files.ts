import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Writes a file atomically: temp file in the same folder, fsync, rename; the folder is created if needed. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  // open() honours the umask; the mode we asked for is what the caller means (e.g. 0600 secrets).
  await chmod(temp, mode);
  await rename(temp, path);
}

/**
 * The API bearer token in `<stateDir>/api-token`: generated at first start (mode 0600) and reused
 * afterwards. A token file readable by others is tightened back to 0600.
 */
export async function ensureApiToken(stateDir: string): Promise<{ token: string; path: string; created: boolean }> {
  const path = join(stateDir, 'api-token');
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (token.length >= 16) {
      if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600);
      return { token, path, created: false };
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(32).toString('base64url');
  await mkdir(stateDir, { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, `${token}\n`, 0o600);
  return { token, path, created: true };
}
