import { access, constants, stat } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { execFileRunner, writeFileAtomic, type CommandRunner } from '@iot-tofu/host-io';
import { DEFAULT_CONFIG } from './config.js';
import { DEFAULT_CONFIG_FILE } from './load-config.js';

export const UNIT_NAME = 'iot-tofu-boot-server.service';
/** The dedicated system user the daemon runs as (created through sysusers.d). */
export const SERVICE_USER = 'iot-tofu';
/** Files `install` owns below the root (besides the config, which it only creates). */
export const UNIT_PATH = 'etc/systemd/system/iot-tofu-boot-server.service';
export const SYSUSERS_PATH = 'etc/sysusers.d/iot-tofu.conf';
export const TMPFILES_PATH = 'etc/tmpfiles.d/iot-tofu.conf';

/** The folders the unit and tmpfiles.d name: where the daemon reads from and the one it writes to. */
export interface FleetPaths {
  tftpRoot: string;
  nfsRoot: string;
  stateDir: string;
  exportsFile: string;
}

export interface UnitOptions {
  /** Full ExecStart command line parts: node, the cli script, … (quoted as needed). */
  execStart: readonly string[];
  configFile: string;
  /** The service user (default iot-tofu). The daemon never runs as root. */
  user?: string;
  /** stateDir is the only path the daemon may write; the rest stay read-only under ProtectSystem=strict. */
  paths: FleetPaths;
  /**
   * `ProtectHome=yes` hides /home, /root and /run/user; when node or the CLI lives there (nvm, a
   * checkout in a home folder) the unit says `read-only` instead, or the service could not start.
   */
  programInHome?: boolean;
}

function quoteArg(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** A path as a unit file setting value: systemd takes C-style escapes, spaces must be quoted. */
function unitPath(path: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(path) ? path : `"${path.replace(/(["\\])/g, '\\$1')}"`;
}

const HOME_PREFIXES = ['/home/', '/root/', '/run/user/'];

/** True when a path lies below what ProtectHome=yes hides. */
export function underHome(path: string): boolean {
  return HOME_PREFIXES.some((prefix) => path === prefix.slice(0, -1) || path.startsWith(prefix));
}

/**
 * The systemd unit, pure. The daemon binds :67, :69 and :4011 and serves files: it runs as a
 * system user with CAP_NET_BIND_SERVICE and nothing else. Broadcast replies are plain UDP with
 * SO_BROADCAST and the neighbour scan reads `ip -j neigh` over netlink, so CAP_NET_RAW is not
 * needed. Fleet changes (rootfs copies with owners and device nodes, exportfs) are made by
 * `pxetools` run as root; the API answers them with a 403 that says so (README "Privileges").
 */
export function renderSystemdUnit(options: UnitOptions): string {
  const user = options.user ?? SERVICE_USER;
  const lines = [
    '[Unit]',
    'Description=iot-tofu boot server (proxyDHCP, TFTP, HTTP API) for Raspberry Pi network boot',
    'Documentation=https://github.com/iot-tofu',
    'After=network-online.target nfs-server.service',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[...options.execStart, 'start', '--config', options.configFile].map(quoteArg).join(' ')}`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'RestartSec=2',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=15',
    'Environment=NODE_ENV=production',
    `User=${user}`,
    `Group=${user}`,
    'UMask=0027',
    '# Ports 67, 69 and 4011 are below 1024; nothing else is granted (no CAP_NET_RAW: replies are plain UDP).',
    'AmbientCapabilities=CAP_NET_BIND_SERVICE',
    'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    'NoNewPrivileges=yes',
    '# The file system is read-only but for the state dir (registry reads, learned MAC/IP, API token).',
    'ProtectSystem=strict',
    `ReadWritePaths=${unitPath(options.paths.stateDir)}`,
    `ProtectHome=${options.programInHome ? 'read-only' : 'yes'}`,
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'PrivateMounts=yes',
    "# Other users' processes are hidden; a lock held by a root pxetools still counts as alive (kill(pid, 0) says EPERM).",
    'ProtectProc=invisible',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    '# AF_NETLINK: `ip -j neigh` (IPs of Pis that got their lease from the router).',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'RemoveIPC=yes',
    'SystemCallArchitectures=native',
    'SystemCallFilter=@system-service',
    'SystemCallFilter=~@privileged @resources',
    'SystemCallErrorNumber=EPERM',
    '# Not set: MemoryDenyWriteExecute (V8 compiles JavaScript to machine code at run time),',
    '# PrivateUsers (capabilities in a user namespace do not bind host ports), ProcSubset=pid (nfsd health reads /proc/fs/nfsd).',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

/** sysusers.d entry: the system user and its group, home = the state dir, no login. */
export function renderSysusers(paths: FleetPaths, user = SERVICE_USER): string {
  return `# iot-tofu boot server: the daemon's system user (boot-server install)\nu ${user} - "iot-tofu boot server" ${paths.stateDir} /usr/sbin/nologin\n`;
}

/**
 * tmpfiles.d entries: the state dir belongs to the service user (an API token left by an earlier
 * root daemon is handed over); the TFTP and NFS roots and the exports folder stay root's, written
 * by `pxetools` as root and only read by the daemon.
 */
export function renderTmpfiles(paths: FleetPaths, user = SERVICE_USER): string {
  return [
    '# iot-tofu boot server (boot-server install): the daemon writes only its state dir',
    `d ${paths.stateDir} 0755 ${user} ${user} -`,
    `z ${join(paths.stateDir, 'api-token')} 0600 ${user} ${user} -`,
    `z ${join(paths.stateDir, 'seen.json')} 0644 ${user} ${user} -`,
    `d ${paths.tftpRoot} 0755 root root -`,
    `d ${paths.nfsRoot} 0755 root root -`,
    `d ${dirname(paths.exportsFile)} 0755 root root -`,
    '',
  ].join('\n');
}

/** The config file `install` writes: every key at its default, the server IP left to autodetection. */
export function defaultConfigFileText(): string {
  const { tftpRoot, nfsRoot, stateDir, exportsFile, dhcpAnswer, apiListen, apiPort, logLevel } = DEFAULT_CONFIG;
  return `${JSON.stringify({ tftpRoot, nfsRoot, stateDir, exportsFile, dhcpAnswer, apiListen, apiPort, logLevel, pxe: {} }, null, 2)}\n`;
}

/** The fleet folders a config file names (defaults for what it leaves out). */
export function fleetPathsOf(data: unknown): FleetPaths {
  const file = data && typeof data === 'object' ? (data as Record<string, unknown>) : {};
  const pick = (key: keyof FleetPaths): string =>
    typeof file[key] === 'string' && (file[key] as string).startsWith('/') ? (file[key] as string) : DEFAULT_CONFIG[key];
  return { tftpRoot: pick('tftpRoot'), nfsRoot: pick('nfsRoot'), stateDir: pick('stateDir'), exportsFile: pick('exportsFile') };
}

export interface InstallOptions {
  /** Filesystem root to install into ('/' normally; a temp dir in tests and packaging). */
  root: string;
  execStart: readonly string[];
  user?: string;
  configFile?: string;
  /** Print what would be written and run; touch nothing. */
  dryRun?: boolean;
  /** Looks up a program; default: PATH plus /usr/sbin and /sbin. */
  which?: (program: string) => Promise<string | undefined>;
  runner?: CommandRunner;
  /** Whether systemd runs (daemon-reload then); default: /run/systemd/system exists. */
  systemdRunning?: () => Promise<boolean>;
}

export interface InstallAction {
  /** 'write' a file, 'keep' an existing one, 'run' a command. */
  kind: 'write' | 'keep' | 'run';
  what: string;
}

export interface InstallResult {
  unitPath: string;
  configPath: string;
  configWritten: boolean;
  nfsServerPresent: boolean;
  user: string;
  paths: FleetPaths;
  actions: InstallAction[];
  notes: string[];
}

export async function defaultWhich(program: string): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      await promisify(access)(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function systemdRunning(): Promise<boolean> {
  return promisify(stat)('/run/systemd/system').then(
    (info) => info.isDirectory(),
    () => false,
  );
}

/** `root` + an absolute path. */
export function below(root: string, path: string): string {
  return root === '/' ? path : join(root, path);
}

async function readJson(path: string): Promise<{ exists: boolean; data: unknown }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { exists: false, data: undefined };
  }
  try {
    return { exists: true, data: text.trim() === '' ? {} : JSON.parse(text) };
  } catch {
    return { exists: true, data: undefined };
  }
}

/**
 * Writes the unit, the sysusers.d and tmpfiles.d entries and (unless one exists) the default config;
 * creates the user and folders with systemd-sysusers / systemd-tmpfiles (`--root` below another
 * root); reloads systemd when it runs. Reports whether NFS can work.
 */
export async function installBootServer(options: InstallOptions): Promise<InstallResult> {
  const configFile = options.configFile ?? DEFAULT_CONFIG_FILE;
  const user = options.user ?? SERVICE_USER;
  if (user === 'root') throw new Error('the daemon does not run as root: --user names its system user (default iot-tofu)');
  if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(user)) throw new Error(`--user ${user}: not a valid system user name`);
  const root = options.root;
  const runner = options.runner ?? execFileRunner;
  const dryRun = options.dryRun ?? false;
  const actions: InstallAction[] = [];
  const notes: string[] = [];
  const configPath = below(root, configFile);
  const existing = await readJson(configPath);
  if (existing.exists && existing.data === undefined)
    notes.push(`${configPath} is not valid JSON: the unit uses the default folders; fix it before starting`);
  const paths = fleetPathsOf(existing.data);
  const programInHome = options.execStart.some((part) => part.startsWith('/') && underHome(part));
  if (programInHome)
    notes.push(
      `node or the boot-server script lives below /home, /root or /run/user (${options.execStart.join(' ')}): the unit says ProtectHome=read-only; install the package globally (README "Install") for ProtectHome=yes`,
    );

  const files: Array<[string, string, number]> = [
    [below(root, `/${UNIT_PATH}`), renderSystemdUnit({ execStart: options.execStart, configFile, user, paths, programInHome }), 0o644],
    [below(root, `/${SYSUSERS_PATH}`), renderSysusers(paths, user), 0o644],
    [below(root, `/${TMPFILES_PATH}`), renderTmpfiles(paths, user), 0o644],
  ];
  for (const [path, text, mode] of files) {
    if (!dryRun) await writeFileAtomic(path, text, mode, { createDir: true });
    actions.push({ kind: 'write', what: path });
  }
  let configWritten = false;
  if (existing.exists) actions.push({ kind: 'keep', what: configPath });
  else {
    if (!dryRun) await writeFileAtomic(configPath, defaultConfigFileText(), 0o644, { createDir: true });
    configWritten = !dryRun;
    actions.push({ kind: 'write', what: configPath });
  }

  const which = options.which ?? defaultWhich;
  const rootArgs = root === '/' ? [] : [`--root=${root}`];
  const commands: Array<[string, string[]]> = [];
  const sysusers = await which('systemd-sysusers');
  if (sysusers) commands.push([sysusers, [...rootArgs, below(root, `/${SYSUSERS_PATH}`)]]);
  else {
    const useradd = await which('useradd');
    if (useradd && root === '/')
      commands.push([
        useradd,
        ['--system', '--user-group', '--home-dir', paths.stateDir, '--no-create-home', '--shell', '/usr/sbin/nologin', user],
      ]);
    else notes.push(`neither systemd-sysusers nor useradd found: create the system user ${user} by hand`);
  }
  const tmpfiles = await which('systemd-tmpfiles');
  if (tmpfiles) commands.push([tmpfiles, [...rootArgs, '--create', below(root, `/${TMPFILES_PATH}`)]]);
  else notes.push(`systemd-tmpfiles not found: create ${paths.stateDir} owned by ${user}, and ${paths.tftpRoot}, ${paths.nfsRoot}`);
  if (root === '/' && (await (options.systemdRunning ?? systemdRunning)())) {
    const systemctl = await which('systemctl');
    if (systemctl) commands.push([systemctl, ['daemon-reload']]);
  }
  for (const [file, args] of commands) {
    actions.push({ kind: 'run', what: [file, ...args].join(' ') });
    if (dryRun) continue;
    // A user that exists already is fine for useradd (exit 9); sysusers and tmpfiles are idempotent.
    try {
      await runner(file, args);
    } catch (error) {
      if (file.endsWith('useradd') && (error as { exitCode?: number }).exitCode === 9) continue;
      throw error;
    }
  }

  const [exportfs, nfsd] = await Promise.all([which('exportfs'), which('rpc.nfsd')]);
  const nfsServerPresent = !!exportfs && !!nfsd;
  if (!nfsServerPresent)
    notes.push(
      'nfs-kernel-server is not installed (no exportfs/rpc.nfsd): Pis cannot mount their roots. Install it: apt-get install nfs-kernel-server',
    );
  notes.push(
    `the daemon runs as ${user} with CAP_NET_BIND_SERVICE only; add and remove Pis with sudo pxetools (the API refuses changes with a 403 that says so)`,
  );
  notes.push(`enable and start: systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}`);
  notes.push('check the machine and the Pi bootloader settings: boot-server doctor');
  return { unitPath: files[0]![0], configPath, configWritten, nfsServerPresent, user, paths, actions, notes };
}
