import { IotTofuError } from '@iot-tofu/errors';
import { HOSTNAME_PATTERN } from './fields.js';

/**
 * Text files that make a Pi boot from the network: cmdline.txt, config.txt, fstab, hostname.
 * Pure renderers; the fleet package decides where they go.
 */

export class InvalidNameError extends IotTofuError {
  constructor(input: string, why: string) {
    super('INVALID_NAME', `Invalid Pi name ${JSON.stringify(input)}: ${why}`);
  }
}

/** True for a single RFC 1123 host label (what /etc/hostname of a Pi should hold). */
export function isValidHostname(name: string): boolean {
  return HOSTNAME_PATTERN.test(name);
}

/** Returns the name unchanged or throws INVALID_NAME saying what is wrong with it. */
export function checkHostname(name: string): string {
  if (name.length === 0) throw new InvalidNameError(name, 'it is empty');
  if (name.length > 63) throw new InvalidNameError(name, 'a host name has at most 63 characters');
  if (!isValidHostname(name)) throw new InvalidNameError(name, 'use letters, digits and inner hyphens only (RFC 1123 host name)');
  return name;
}

export interface FstabOptions {
  serverIp: string;
  /** The exported boot folder of this Pi (its TFTP folder), e.g. /tftpboot/9f55bbfd. */
  bootExportPath: string;
  /** Where the OS expects its boot partition: /boot/firmware (Bookworm+) or /boot (older). */
  bootMountPoint: string;
  /** Upstream mounted /dev/sda1 on /var/lib/docker; ours is opt-in and never blocks boot (E11). */
  dockerDisk?: boolean;
}

/**
 * Options of the /boot/firmware mount: NFSv3 over TCP like the root (the server exports v3; see
 * NFS_ROOT_MOUNT_OPTIONS), `nolock` because nothing locks boot files across hosts and it spares the
 * mount a dependency on rpc.statd; `_netdev` orders it after the network.
 */
export const BOOT_MOUNT_OPTIONS = 'defaults,_netdev,vers=3,proto=tcp,nolock';

/**
 * fstab for an NFS-root Pi: proc, and the Pi's own TFTP folder over NFS as its boot partition so
 * kernel and firmware updates land in what TFTP serves (PXETOOLS.md E10). No leading blanks.
 */
export function renderFstab(options: FstabOptions): string {
  const lines = ['proc /proc proc defaults 0 0', `${options.serverIp}:${options.bootExportPath} ${options.bootMountPoint} nfs ${BOOT_MOUNT_OPTIONS} 0 0`];
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
