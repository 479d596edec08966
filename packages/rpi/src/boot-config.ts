import { IotTofuError } from '@iot-tofu/errors';

/**
 * Text files that make a Pi boot from the network: cmdline.txt, config.txt, fstab, hostname.
 * Pure renderers; the fleet package decides where they go.
 */

export class InvalidNameError extends IotTofuError {
  constructor(input: string, why: string) {
    super('INVALID_NAME', `Invalid Pi name ${JSON.stringify(input)}: ${why}`);
  }
}

const HOSTNAME_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** True for a single RFC 1123 host label (what /etc/hostname of a Pi should hold). */
export function isValidHostname(name: string): boolean {
  return HOSTNAME_LABEL.test(name);
}

/** Returns the name unchanged or throws INVALID_NAME saying what is wrong with it. */
export function checkHostname(name: string): string {
  if (name.length === 0) throw new InvalidNameError(name, 'it is empty');
  if (name.length > 63) throw new InvalidNameError(name, 'a host name has at most 63 characters');
  if (!isValidHostname(name)) throw new InvalidNameError(name, 'use letters, digits and inner hyphens only (RFC 1123 host name)');
  return name;
}

export interface CmdlineOptions {
  serverIp: string;
  /** The exported root path, e.g. /nfs/9f55bbfd. */
  nfsRootPath: string;
  /** NFS version the kernel mounts with; 4.1 like upstream, '3' for older servers. */
  nfsVersion?: string;
  /** Extra kernel arguments appended at the end (e.g. 'quiet'). */
  extra?: readonly string[];
}

/**
 * cmdline.txt as ONE line (the firmware only reads the first line, upstream's second line with the
 * cgroup flags was ignored: PXETOOLS.md E9). `elevator=deadline` is obsolete and left out.
 */
export function renderCmdline(options: CmdlineOptions): string {
  const version = options.nfsVersion ?? '4.1';
  const args = [
    'console=serial0,115200',
    'console=tty1',
    'root=/dev/nfs',
    `nfsroot=${options.serverIp}:${options.nfsRootPath},vers=${version},proto=tcp`,
    'rw',
    'ip=dhcp',
    'rootwait',
    'cgroup_enable=cpuset',
    'cgroup_memory=1',
    'cgroup_enable=memory',
    ...(options.extra ?? []),
  ];
  for (const arg of args) {
    if (/\s/.test(arg) || arg.length === 0) throw new IotTofuError('INVALID_CMDLINE', `kernel argument ${JSON.stringify(arg)} is empty or contains blanks`);
  }
  return `${args.join(' ')}\n`;
}

export interface FstabOptions {
  serverIp: string;
  /** The exported boot folder of this Pi (its TFTP folder), e.g. /tftpboot/9f55bbfd. */
  bootExportPath: string;
  /** Where the OS expects its boot partition: /boot/firmware (Bookworm+) or /boot (older). */
  bootMountPoint: string;
  nfsVersion?: string;
  /** Upstream mounted /dev/sda1 on /var/lib/docker; ours is opt-in and never blocks boot (E11). */
  dockerDisk?: boolean;
}

/**
 * fstab for an NFS-root Pi: proc, and the Pi's own TFTP folder over NFS as its boot partition so
 * kernel and firmware updates land in what TFTP serves (PXETOOLS.md E10). No leading blanks.
 */
export function renderFstab(options: FstabOptions): string {
  const version = options.nfsVersion ?? '4.1';
  const lines = [
    'proc /proc proc defaults 0 0',
    `${options.serverIp}:${options.bootExportPath} ${options.bootMountPoint} nfs defaults,_netdev,vers=${version},proto=tcp 0 0`,
  ];
  if (options.dockerDisk) lines.push('/dev/sda1 /var/lib/docker ext4 noatime,nofail,x-systemd.device-timeout=10s 0 2');
  return `${lines.join('\n')}\n`;
}

/** /etc/hostname content for a validated name. */
export function renderHostname(name: string): string {
  return `${checkHostname(name)}\n`;
}

/**
 * /etc/hosts for the Pi: loopback plus its own name on 127.0.1.1 (Debian convention), so sudo
 * and friends resolve the new hostname without DNS.
 */
export function renderHosts(name: string): string {
  checkHostname(name);
  return [
    '127.0.0.1\tlocalhost',
    '::1\t\tlocalhost ip6-localhost ip6-loopback',
    'ff02::1\t\tip6-allnodes',
    'ff02::2\t\tip6-allrouters',
    '',
    `127.0.1.1\t${name}`,
    '',
  ].join('\n');
}

/** One `[filter]` section of config.txt and its lines, e.g. `{ filter: 'pi4', lines: ['arm_boost=1'] }`. */
export interface ConfigTxtSection {
  filter: string;
  lines: readonly string[];
}

/** Renders config.txt sections in order; every section starts with its `[filter]` line. */
export function renderConfigTxt(sections: readonly ConfigTxtSection[]): string {
  const out: string[] = [];
  for (const section of sections) {
    if (!/^[a-z0-9_=.:-]+$/i.test(section.filter)) throw new IotTofuError('INVALID_CONFIG_TXT', `config.txt filter [${section.filter}] is not valid`);
    out.push(`[${section.filter}]`);
    for (const line of section.lines) {
      if (line.includes('\n')) throw new IotTofuError('INVALID_CONFIG_TXT', `config.txt line ${JSON.stringify(line)} spans several lines`);
      out.push(line);
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** Free text config.txt as given by an operator, normalised to LF endings and a final newline. */
export function normalizeConfigTxt(text: string): string {
  const unix = text.replace(/\r\n?/g, '\n');
  return unix.endsWith('\n') || unix === '' ? unix : `${unix}\n`;
}

/** The upstream `owner` / `name` files: the text plus a newline (PXETOOLS.md C7). */
export function renderOwnerFile(text: string): string {
  if (text.includes('\n')) throw new IotTofuError('INVALID_OWNER', `owner ${JSON.stringify(text)} must be one line`);
  return `${text}\n`;
}
