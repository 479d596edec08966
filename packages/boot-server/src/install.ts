import { access, constants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_CONFIG } from './config.js';
import { writeFileAtomic } from './files.js';
import { DEFAULT_CONFIG_FILE } from './load-config.js';

export const UNIT_NAME = 'iot-tofu-boot-server.service';

export interface UnitOptions {
  /** Full ExecStart command line parts: node, the cli script, … (quoted as needed). */
  execStart: readonly string[];
  configFile: string;
  /**
   * Run as this user with only CAP_NET_BIND_SERVICE (enough for DHCP/TFTP ports). Without it the
   * unit runs as root, which registry changes through the API need (rootfs copies, exportfs).
   */
  user?: string;
}

function quoteArg(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** The systemd unit, pure. */
export function renderSystemdUnit(options: UnitOptions): string {
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
  ];
  if (options.user) {
    lines.push(
      `User=${options.user}`,
      // Ports 67, 69 and 4011 without root.
      'AmbientCapabilities=CAP_NET_BIND_SERVICE',
      'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
      'NoNewPrivileges=yes',
    );
  } else {
    lines.push('User=root');
  }
  lines.push('ProtectHome=read-only', 'PrivateTmp=yes', '', '[Install]', 'WantedBy=multi-user.target', '');
  return lines.join('\n');
}

/** The config file `install` writes: every key at its default, the server IP left to autodetection. */
export function defaultConfigFileText(): string {
  const { tftpRoot, nfsRoot, stateDir, exportsFile, dhcpAnswer, apiListen, apiPort, logLevel } = DEFAULT_CONFIG;
  return `${JSON.stringify({ tftpRoot, nfsRoot, stateDir, exportsFile, dhcpAnswer, apiListen, apiPort, logLevel, pxe: {} }, null, 2)}\n`;
}

export interface InstallOptions {
  /** Filesystem root to install into ('/' normally; a temp dir in tests and packaging). */
  root: string;
  execStart: readonly string[];
  user?: string;
  configFile?: string;
  /** Looks up a program; default: PATH plus /usr/sbin and /sbin. */
  which?: (program: string) => Promise<string | undefined>;
}

export interface InstallResult {
  unitPath: string;
  configPath: string;
  configWritten: boolean;
  nfsServerPresent: boolean;
  notes: string[];
}

async function defaultWhich(program: string): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']);
  for (const dir of dirs) {
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

/** Writes the unit and (unless one exists) the default config; reports whether NFS can work. */
export async function installBootServer(options: InstallOptions): Promise<InstallResult> {
  const configFile = options.configFile ?? DEFAULT_CONFIG_FILE;
  const unitPath = join(options.root, 'etc/systemd/system', UNIT_NAME);
  const configPath = join(options.root, configFile);
  await writeFileAtomic(unitPath, renderSystemdUnit({ execStart: options.execStart, configFile, ...(options.user ? { user: options.user } : {}) }), 0o644);
  let configWritten = false;
  try {
    await readFile(configPath);
  } catch {
    await writeFileAtomic(configPath, defaultConfigFileText(), 0o644);
    configWritten = true;
  }
  const which = options.which ?? defaultWhich;
  const [exportfs, nfsd] = await Promise.all([which('exportfs'), which('rpc.nfsd')]);
  const nfsServerPresent = !!exportfs && !!nfsd;
  const notes: string[] = [];
  if (!nfsServerPresent) notes.push('nfs-kernel-server is not installed (no exportfs/rpc.nfsd): Pis cannot mount their roots. Install it: apt-get install nfs-kernel-server');
  notes.push(`enable and start: systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}`);
  return { unitPath, configPath, configWritten, nfsServerPresent, notes };
}
