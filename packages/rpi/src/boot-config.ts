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
}

/**
 * Options of the /boot/firmware mount: NFSv3 over TCP like the root (the server exports v3; see
 * NFS_ROOT_MOUNT_OPTIONS), `nolock` because nothing locks boot files across hosts and it spares the
 * mount a dependency on rpc.statd; `_netdev` orders it after the network.
 */
export const BOOT_MOUNT_OPTIONS = 'defaults,_netdev,vers=3,proto=tcp,nolock';

/**
 * fstab for an NFS-root Pi: proc, and the Pi's own TFTP folder over NFS as its boot partition so
 * kernel and firmware updates land in what TFTP serves (docs/pxetools-compat.md E10). No leading blanks.
 */
export function renderFstab(options: FstabOptions): string {
  // Upstream's /dev/sda1 on /var/lib/docker line is gone: the docker disk is an image file in the
  // Pi's own root, mounted by units (renderDockerDiskUnits), so no USB disk has to be plugged in.
  const lines = [
    'proc /proc proc defaults 0 0',
    `${options.serverIp}:${options.bootExportPath} ${options.bootMountPoint} nfs ${BOOT_MOUNT_OPTIONS} 0 0`,
  ];
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
    if (!/^[a-z0-9_=.:-]+$/i.test(section.filter))
      throw new IotTofuError('INVALID_CONFIG_TXT', `config.txt filter [${section.filter}] is not valid`);
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

/** The upstream `owner` / `name` files: the text plus a newline (docs/pxetools-compat.md C7). */
export function renderOwnerFile(text: string): string {
  if (text.includes('\n')) throw new IotTofuError('INVALID_OWNER', `owner ${JSON.stringify(text)} must be one line`);
  return `${text}\n`;
}

/**
 * The docker disk of an NFS-root Pi: overlayfs (Docker's overlay2, containerd's overlayfs
 * snapshotter) refuses an NFS upper dir (moby PR #35483, k3s#3266), so /var/lib/docker is an
 * ext4 image file inside the Pi's own root, loop-mounted by the Pi itself. The server only
 * creates the file (sparse, mkfs.ext4 on the file: no loop device there).
 */
export const DOCKER_DISK_PATH = '/var/lib/iot-tofu/docker.img';
/** The directory inside the image bound onto /var/lib/containerd (Docker 29's containerd image store keeps its layers there). */
export const DOCKER_DISK_CONTAINERD_DIR = '.iot-tofu-containerd';
export const DOCKER_DISK_FSCK_UNIT = 'iot-tofu-docker-disk-fsck.service';
export const DOCKER_DISK_MOUNT_UNIT = 'var-lib-docker.mount';
export const CONTAINERD_MOUNT_UNIT = 'var-lib-containerd.mount';
/** Drop-in for docker.service and containerd.service: never run on the NFS root when the disk is missing. */
export const DOCKER_DISK_DROPIN = 'iot-tofu-docker-disk.conf';

/**
 * Units (file name → text, for /etc/systemd/system) that check and mount the docker disk on the Pi:
 * e2fsck -p before every mount (a Pi switched off mid-write leaves a dirty journal), the image at
 * /var/lib/docker (loop, nofail: a broken image never stops the boot), a directory of it bound
 * onto /var/lib/containerd, and drop-ins that keep docker and containerd from starting without
 * them (they would otherwise fall back to vfs copies on NFS, or fail on overlayfs). Pure.
 */
export function renderDockerDiskUnits(e2fsck = '/sbin/e2fsck'): Record<string, string> {
  const image = DOCKER_DISK_PATH;
  return {
    [DOCKER_DISK_FSCK_UNIT]: `[Unit]
Description=Check the Docker disk image (iot-tofu)
Documentation=man:e2fsck(8)
DefaultDependencies=no
ConditionPathExists=${image}
Before=${DOCKER_DISK_MOUNT_UNIT} shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
# -p repairs what is safe without questions; exit 1 means errors were corrected.
ExecStart=${e2fsck} -p ${image}
SuccessExitStatus=1
TimeoutStartSec=15min
`,
    [DOCKER_DISK_MOUNT_UNIT]: `[Unit]
Description=Docker disk: ext4 image in this Pi's NFS root (iot-tofu)
Documentation=man:systemd.mount(5)
ConditionPathExists=${image}
Requires=${DOCKER_DISK_FSCK_UNIT}
After=${DOCKER_DISK_FSCK_UNIT}
Before=docker.service containerd.service

[Mount]
What=${image}
Where=/var/lib/docker
Type=ext4
Options=loop,nofail,noatime

[Install]
WantedBy=local-fs.target
`,
    [CONTAINERD_MOUNT_UNIT]: `[Unit]
Description=containerd storage on the Docker disk (iot-tofu)
Requires=${DOCKER_DISK_MOUNT_UNIT}
After=${DOCKER_DISK_MOUNT_UNIT}
Before=containerd.service docker.service

[Mount]
What=/var/lib/docker/${DOCKER_DISK_CONTAINERD_DIR}
Where=/var/lib/containerd
Type=none
Options=bind,nofail

[Install]
WantedBy=local-fs.target
`,
  };
}

/** The drop-in text for docker.service.d/ and containerd.service.d/. Pure. */
export function renderDockerDiskDropIn(): string {
  return `# iot-tofu: run only on the docker disk, never on the NFS root (overlayfs refuses NFS).
[Unit]
RequiresMountsFor=/var/lib/docker /var/lib/containerd
`;
}

/** A Debian/Pi OS user name (useradd's default NAME_REGEX, lower case), not root. */
export const USER_NAME_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * crypt(3) hashes Pi OS's userconfig accepts (it hands the line to chpasswd -e): sha512crypt
 * (`openssl passwd -6`, `mkpasswd -m sha-512`) and yescrypt (`mkpasswd -m yescrypt`, Debian 12's default).
 */
export const PASSWORD_HASH_PATTERN =
  /^(\$6\$(rounds=\d{4,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}|\$y\$[./A-Za-z0-9]+\$[./A-Za-z0-9]{1,86}\$[./A-Za-z0-9]{43})$/;

/**
 * userconf.txt for /boot/firmware: `user:hash`, read on first boot by Pi OS's userconfig.service
 * (userconf-pi), which renames the uid-1000 user and sets the password, then deletes the file
 * (Raspberry Pi documentation, configuration/headless.adoc "Configure a user manually"). Pure.
 */
export function renderUserconf(user: string, passwordHash: string): string {
  if (!USER_NAME_PATTERN.test(user) || user === 'root')
    throw new IotTofuError(
      'INVALID_REQUEST',
      `user name ${JSON.stringify(user)} is not a valid Pi OS user name (lower case letters, digits, '_' and '-', at most 32, not root)`,
    );
  if (!PASSWORD_HASH_PATTERN.test(passwordHash))
    throw new IotTofuError(
      'INVALID_REQUEST',
      'the password hash must be a crypt(3) hash: $6$… (openssl passwd -6) or $y$… (mkpasswd -m yescrypt); plain passwords are refused',
    );
  return `${user}:${passwordHash}\n`;
}
