import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@iot-tofu/host-io';

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
