import { chmod, lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PASSWORD_HASH_PATTERN, USER_NAME_PATTERN, renderUserconf } from '@iot-tofu/rpi';
import { FleetError } from './errors.js';
import { safeParent } from './rootfs.js';
import { ownBy } from './fs-util.js';

/**
 * First login on a Pi without a monitor. Pi OS ships no usable user: on first boot its
 * userconfig.service reads `userconf.txt` (`user:crypt-hash`) from the boot partition, renames the
 * uid-1000 user to `user` (moving its home) and sets the hash, then deletes the file (Raspberry Pi
 * documentation, configuration/headless.adoc). The boot partition of a netbooted Pi is its TFTP
 * folder, so add writes userconf.txt there, mode 0600 root: the unprivileged TFTP server cannot
 * read it, the Pi (root over NFS, no_root_squash) can. Only a crypt hash is ever accepted; the
 * registry keeps the user name, never the hash. SSH keys go into authorized_keys of that user's
 * home (found in the root's /etc/passwd, moved along by the rename) or root's when no user is given.
 */

export interface FirstLoginRequest {
  user?: string | undefined;
  passwordHash?: string | undefined;
  sshKeys?: string | undefined;
}

const KEY_TYPES =
  /^(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

/** Validates authorized_keys text: each non-blank, non-comment line a public key (options allowed). Pure. */
export function checkSshKeys(text: string): { text: string; count: number } {
  if (/PRIVATE KEY/.test(text)) throw new FleetError('INVALID_REQUEST', 'that is a private key; give the public one (the .pub file)');
  const lines = text
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (lines.length === 0) throw new FleetError('INVALID_REQUEST', 'the SSH key file holds no public key');
  for (const line of lines) {
    const fields = line.split(/\s+/);
    const at = fields.findIndex((f) => KEY_TYPES.test(f));
    if (at < 0 || !/^[A-Za-z0-9+/]+={0,3}$/.test(fields[at + 1] ?? ''))
      throw new FleetError('INVALID_REQUEST', `not an SSH public key line: ${JSON.stringify(line.slice(0, 40))}`);
  }
  return { text: `${lines.join('\n')}\n`, count: lines.length };
}

/** A crypt(3) hash ($6$ or $y$) or INVALID_REQUEST; never echoes the input (it may be a password). Pure. */
export function checkPasswordHash(hash: string): string {
  if (!PASSWORD_HASH_PATTERN.test(hash))
    throw new FleetError(
      'INVALID_REQUEST',
      'the password hash must be a crypt(3) hash: $6$… (openssl passwd -6) or $y$… (mkpasswd -m yescrypt); plain passwords are refused',
    );
  return hash;
}

/** Checks the request's shape before anything is built. Returns what the registry may keep. */
export function checkFirstLogin(request: FirstLoginRequest): { user: string | null; sshKeys: number } | null {
  if ((request.user === undefined) !== (request.passwordHash === undefined))
    throw new FleetError('INVALID_REQUEST', 'user and password hash go together (Pi OS userconf.txt needs both)');
  if (request.user !== undefined && (!USER_NAME_PATTERN.test(request.user) || request.user === 'root'))
    throw new FleetError(
      'INVALID_REQUEST',
      `user name ${JSON.stringify(request.user)} is not a valid Pi OS user name (lower case letters, digits, '_' and '-', at most 32, not root)`,
    );
  if (request.passwordHash !== undefined) checkPasswordHash(request.passwordHash);
  const keys = request.sshKeys !== undefined ? checkSshKeys(request.sshKeys).count : 0;
  if (request.user === undefined && keys === 0) return null;
  return { user: request.user ?? null, sshKeys: keys };
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

async function passwd(root: string): Promise<PasswdEntry[]> {
  const text = await readFile(join(root, 'etc', 'passwd'), 'utf8').catch(() => '');
  return text.split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 7) return [];
    return [{ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }];
  });
}

/**
 * Writes the first-login files into a Pi's temp trees: userconf.txt into its boot folder,
 * authorized_keys into the home of the uid-1000 user (when a user is given) or of root.
 */
export async function applyFirstLogin(root: string, bootDir: string, request: FirstLoginRequest): Promise<void> {
  if (request.user !== undefined && request.passwordHash !== undefined) {
    const file = join(bootDir, 'userconf.txt');
    await writeFile(file, renderUserconf(request.user, request.passwordHash), { mode: 0o600 });
    await chmod(file, 0o600);
    await ownBy(file, 0, 0);
  }
  if (request.sshKeys === undefined) return;
  const keys = checkSshKeys(request.sshKeys).text;
  const users = await passwd(root);
  const owner =
    request.user !== undefined
      ? users.find((u) => u.uid === 1000)
      : (users.find((u) => u.uid === 0) ?? { name: 'root', uid: 0, gid: 0, home: '/root' });
  if (!owner)
    throw new FleetError(
      'BASE_INVALID',
      'the base has no uid-1000 user for userconf.txt to rename; give --ssh-key without --user (root) or use a Pi OS base',
    );
  if (!owner.home.startsWith('/') || owner.home === '/')
    throw new FleetError('BASE_INVALID', `home of ${owner.name} (${owner.home}) is not a usable folder`);
  const home = owner.home.slice(1);
  const sshDir = join(root, home, '.ssh');
  if (
    !(await lstat(join(root, home))
      .then((i) => i.isDirectory())
      .catch(() => false))
  )
    throw new FleetError('BASE_INVALID', `home ${owner.home} of ${owner.name} is missing in the base (or a symlink)`);
  const target = await safeParent(root, `${home}/.ssh/authorized_keys`);
  await mkdir(sshDir, { recursive: true, mode: 0o700 });
  await chmod(sshDir, 0o700);
  await ownBy(sshDir, owner.uid, owner.gid);
  const existing = await readFile(target, 'utf8').catch(() => '');
  const info = await lstat(target).catch(() => undefined);
  if (info && !info.isFile()) throw new FleetError('BASE_INVALID', `${owner.home}/.ssh/authorized_keys in the base is not a plain file`);
  await writeFile(target, existing && !existing.endsWith('\n') ? `${existing}\n${keys}` : `${existing}${keys}`, { mode: 0o600 });
  await chmod(target, 0o600);
  await ownBy(target, owner.uid, owner.gid);
}
