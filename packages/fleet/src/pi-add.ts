import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { checkHostname, checkIpv4, checkOwner, normalizeConfigTxt, normalizeMac, parseSerial, renderOwnerFile } from '@iot-tofu/rpi';
import { cmdlineFromBase } from './boot-folder.js';
import { copyTree, copyTreeWithProgress } from './copy.js';
import type { FleetCore } from './core.js';
import { FleetError } from './errors.js';
import { exists, removeTree } from './fs-util.js';
import type { Intent } from './intents.js';
import type { RegisteredPi, StoredBase } from './registry.js';
import { applyRootfs, planRootfs } from './rootfs.js';
import { settlePi } from './settle.js';
import {
  DOCKER_DISK_DEFAULT_SIZE,
  DOCKER_DISK_IMAGE,
  findE2fsck,
  makeDockerDisk,
  parseDiskSize,
  planDockerDiskUnits,
} from './docker-disk.js';
import { applyFirstLogin, checkFirstLogin } from './first-login.js';
import type { AddRequest, AddResult, ProgressOptions } from './types.js';

/**
 * add: a Pi's boot folder, root (with its docker disk and first-login files) and exports, built in temp siblings under the Pi's lock and an
 * intent, committed by renames inside the registry mutation; any failure undoes every step.
 */

/** The requested docker disk size as text: the default when not given; the legacy boolean as the default or none. */
function dockerDiskSize(requested: string | boolean | undefined, fallback: string): string {
  if (requested === undefined) return fallback;
  if (typeof requested === 'boolean') return requested ? (parseDiskSize(fallback) > 0 ? fallback : DOCKER_DISK_DEFAULT_SIZE) : '0';
  return requested;
}

/** The unit file of a base (merged /usr or not), as the absolute path the Pi will see. */
async function findUnit(root: string, unit: string): Promise<string | null> {
  for (const dir of ['usr/lib/systemd/system', 'lib/systemd/system']) {
    const info = await lstat(join(root, dir, unit)).catch(() => undefined);
    if (info?.isFile()) return `/${dir}/${unit}`;
  }
  return null;
}

/**
 * Registers a Pi and builds its boot folder, root and exports. Transactional: everything is built
 * in temp siblings and committed with renames; on any failure every completed step is undone.
 */
export async function addPi(core: FleetCore, request: AddRequest, options: ProgressOptions = {}): Promise<AddResult> {
  const started = Date.now();
  const serial = parseSerial(request.serial);
  const short = serial.short;
  const owner = checkOwner(request.owner);
  const name = checkHostname(request.name);
  const mac = request.mac ? normalizeMac(request.mac) : null;
  if (request.ip !== undefined) checkIpv4(request.ip);
  const own = request.ownFilesystem ?? false;
  // An own-filesystem Pi gets no docker disk from the default (its root is the operator's); asked for explicitly, it is an error.
  const dockerDiskBytes = parseDiskSize(dockerDiskSize(request.dockerDisk, own ? '0' : core.dockerDiskDefault));
  if (own && dockerDiskBytes > 0)
    throw new FleetError('INVALID_REQUEST', 'a docker disk needs a base (its units go into the copied root); not with --own-filesystem');
  const firstLogin = checkFirstLogin(request);
  if (own && firstLogin)
    throw new FleetError('INVALID_REQUEST', 'first-login settings (user, password hash, SSH keys) need a base; not with --own-filesystem');
  core.requireRoot('add');
  await core.reload();
  if (core.data.pis[short])
    throw new FleetError(
      'PI_EXISTS',
      `Pi ${short} is already registered (owner ${core.data.pis[short]!.owner}, name ${core.data.pis[short]!.name})`,
    );
  let base: StoredBase | undefined;
  if (!own) {
    if (!request.base) throw new FleetError('INVALID_REQUEST', 'a base is required unless --own-filesystem is chosen');
    base = core.data.bases[request.base];
    if (!base) {
      const known = Object.keys(core.data.bases).sort();
      throw new FleetError(
        'BASE_NOT_FOUND',
        `base ${request.base} does not exist${known.length ? ` (bases: ${known.join(', ')})` : ' (run pxetools setup first)'}`,
      );
    }
  }
  const tftpDir = join(core.tftpRoot, short);
  const nfsDir = join(core.nfsRoot, short);
  // The Pi's lock first: a second add of the same serial is told it is busy, not to remove it.
  const release = await core.lockPi(short);
  try {
    await settlePi(core, short);
    await core.reload();
    if (core.data.pis[short]) throw new FleetError('PI_EXISTS', `Pi ${short} was registered by someone else meanwhile`);
    for (const dir of [tftpDir, nfsDir]) {
      if (await exists(dir))
        throw new FleetError(
          'PI_EXISTS',
          `${dir} already exists but Pi ${short} is not registered; remove it with pxetools --remove ${short} or adopt it`,
        );
    }
    return await addLocked(core, {
      short,
      full: serial.full,
      owner,
      name,
      mac,
      own,
      base,
      tftpDir,
      nfsDir,
      request,
      options,
      started,
      dockerDiskBytes,
      firstLogin,
    });
  } finally {
    await release();
  }
}

async function addLocked(
  core: FleetCore,
  a: {
    short: string;
    full: string;
    owner: string;
    name: string;
    mac: string | null;
    own: boolean;
    base: StoredBase | undefined;
    tftpDir: string;
    nfsDir: string;
    request: AddRequest;
    options: ProgressOptions;
    started: number;
    dockerDiskBytes: number;
    firstLogin: RegisteredPi['firstLogin'] | null;
  },
): Promise<AddResult> {
  const { short, owner, name, mac, own, base, tftpDir, nfsDir, request, options, started, dockerDiskBytes, firstLogin } = a;
  const tag = randomBytes(4).toString('hex');
  const intent: Intent = { op: 'add', serial: short, tag };
  await core.intents.record(intent);
  const tmpTftp = join(core.tftpRoot, `.${short}.tmp-${tag}`);
  const tmpNfs = join(core.nfsRoot, `.${short}.tmp-${tag}`);
  const undo: Array<() => Promise<void>> = [];
  let copyMode: AddResult['copyMode'] = 'none';
  try {
    await mkdir(core.tftpRoot, { recursive: true });
    await mkdir(core.nfsRoot, { recursive: true });

    await core.beforeStep('add:boot-files');
    // The Pi's /boot/firmware: every file it boots from, its own copy (boot-folder.ts says why).
    if (base) await copyTree(core.runner, base.bootDir, tmpTftp);
    else await mkdir(tmpTftp, { mode: 0o755 });
    const cmdline = await cmdlineFromBase(base?.bootDir ?? null, core.serverIp, nfsDir);
    await writeFile(join(tmpTftp, 'cmdline.txt'), cmdline.text);
    if (request.configTxt !== undefined) await writeFile(join(tmpTftp, 'config.txt'), normalizeConfigTxt(request.configTxt));
    await writeFile(join(tmpTftp, 'owner'), renderOwnerFile(owner));
    await writeFile(join(tmpTftp, 'name'), renderOwnerFile(name));

    await core.beforeStep('add:rootfs-copy');
    if (base) {
      copyMode = (await core.canReflink()) ? 'reflink' : 'full';
      await copyTreeWithProgress(core.runner, base.rootDir, tmpNfs, base.bytes, options.onProgress);
      await core.beforeStep('add:rootfs-tweak');
      const actions = planRootfs({
        name,
        serverIp: core.serverIp,
        bootExportPath: tftpDir,
        layout: base.layout,
        networkManager: await exists(join(tmpNfs, 'etc', 'NetworkManager')),
        sshUnit: await findUnit(tmpNfs, 'ssh.service'),
      });
      await applyRootfs(tmpNfs, actions);
      if (dockerDiskBytes > 0) {
        await core.beforeStep('add:docker-disk');
        // Inside the temp tree: committed by the same rename, deleted with it on any failure.
        await makeDockerDisk(core.runner, tmpNfs, dockerDiskBytes);
        await applyRootfs(tmpNfs, planDockerDiskUnits(await findE2fsck(tmpNfs)));
      }
      if (firstLogin) {
        await core.beforeStep('add:first-login');
        await applyFirstLogin(tmpNfs, tmpTftp, request);
      }
    } else {
      await mkdir(tmpNfs, { mode: 0o755 });
    }

    const entry: RegisteredPi = {
      serial: short,
      serialFull: a.full,
      owner,
      name,
      base: base?.name ?? null,
      mac,
      ownFilesystem: own,
      addedAt: core.clock().toISOString(),
      exports: [nfsDir, tftpDir],
      ...(dockerDiskBytes > 0 ? { dockerDisk: { path: DOCKER_DISK_IMAGE, bytes: dockerDiskBytes } } : {}),
      ...(firstLogin ? { firstLogin } : {}),
      ...(request.ip !== undefined ? { staticIp: request.ip } : {}),
    };
    await core.store.mutate(async (data) => {
      if (data.pis[short]) throw new FleetError('PI_EXISTS', `Pi ${short} was registered by someone else meanwhile`);
      // Checked under the registry lock: two adds racing for one address cannot both get it.
      const holder = entry.staticIp === undefined ? undefined : Object.values(data.pis).find((pi) => pi.staticIp === entry.staticIp);
      if (holder)
        throw new FleetError('IP_TAKEN', `${entry.staticIp} is already the static address of Pi ${holder.serial} (${holder.name})`);
      await core.beforeStep('add:commit-dirs');
      await rename(tmpTftp, tftpDir);
      undo.push(() => rename(tftpDir, tmpTftp));
      await rename(tmpNfs, nfsDir);
      undo.push(() => rename(nfsDir, tmpNfs));
      await core.beforeStep('add:exports');
      await core.export(entry.exports);
      undo.push(() => core.unexport(entry.exports).then(() => undefined));
      await core.beforeStep('add:registry');
      data.pis[short] = entry;
      return { write: true, value: undefined };
    });
    core.data.pis[short] = entry;
    core.facts.rebuildIndex();
    await core.intents.clear(intent);
    core.logger.info({ serial: short, base: entry.base, copyMode, cmdlineDropped: cmdline.dropped }, 'pi added');
    return { pi: core.toJson(entry), copyMode, cmdline: cmdline.text.trimEnd(), cmdlineDropped: cmdline.dropped, ms: Date.now() - started };
  } catch (error) {
    let undone = true;
    for (const step of undo.reverse()) {
      await step().catch((e: unknown) => {
        undone = false;
        core.logger.error({ err: e }, 'add rollback step failed');
      });
    }
    // A rollback that failed keeps the intent: the next verb on this Pi finishes undoing it.
    if (undone) await core.intents.clear(intent);
    throw error;
  } finally {
    await rm(tmpTftp, { recursive: true, force: true });
    await removeTree(tmpNfs).catch((e: unknown) => core.logger.error({ err: e, path: tmpNfs }, 'could not remove temp root'));
  }
}
