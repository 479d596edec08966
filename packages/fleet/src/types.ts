import type { CommandRunner, Logger } from '@iot-tofu/host-io';
import type { NfsHealth } from '@iot-tofu/nfs-server-lite';
import type { PiModel } from '@iot-tofu/rpi';

export type { CommandRunner, Logger };

/** Everything a Fleet needs; the same keys as the config file (docs/design.md), plus injected I/O. */
export interface FleetOptions {
  tftpRoot: string;
  /** Pi roots live in `<nfsRoot>/<serial>`, bases in `<nfsRoot>/bases/<name>`. */
  nfsRoot: string;
  /** registry.json, seen.json, locks and per-base boot files. */
  stateDir: string;
  /** Our own exports file; default /etc/exports.d/iot-tofu.exports. */
  exportsFile?: string;
  /** Who may mount (e.g. 10.77.0.0/24); default: the subnet of serverIp on this machine. */
  exportsClients?: string;
  /** The address Pis mount their roots from (cmdline.txt, fstab). */
  serverIp: string;
  runner?: CommandRunner;
  logger?: Logger;
  clock?: () => Date;
  /** Boot timeline events kept per Pi (default 100). */
  timelineLimit?: number;
  /**
   * Unregistered Pis (serials or MACs seen on the wire, possibly spoofed) whose timeline and learned
   * facts are kept, least recently seen dropped first (default 256). Registered Pis are always kept.
   */
  unregisteredLimit?: number;
  /** Learned facts are written at most this often (default 2000 ms); close() flushes. */
  seenFlushMs?: number;
  /** Whether we run with root privileges (default: euid === 0); mutating verbs need it. */
  isRoot?: () => boolean;
  /**
   * Docker disk size for an add whose request gives none (config key `dockerDisk`, e.g. '8G');
   * '0' (the default) = no docker disk.
   */
  dockerDiskDefault?: string;
  /** Test hook: called before each step of add/remove/setup; throwing there simulates a failure. */
  beforeStep?: (step: FleetStep) => void | Promise<void>;
}

export type FleetStep =
  | 'add:boot-files'
  | 'add:rootfs-copy'
  | 'add:rootfs-tweak'
  | 'add:docker-disk'
  | 'add:first-login'
  | 'add:commit-dirs'
  | 'add:exports'
  | 'add:registry'
  | 'remove:exports'
  | 'remove:registry'
  | 'remove:delete'
  | 'setup:boot'
  | 'setup:root'
  | 'setup:commit'
  | 'setup:registry';

/** Where a MAC shown for a Pi comes from. */
export type MacSource = 'learned' | 'configured' | 'derived';

/**
 * The JSON of one Pi: what `pxetools --json` prints and what the HTTP API answers. Identical in
 * both; keep it stable.
 */
export interface PiJson {
  /** Folder name: low 8 hex digits, lower case. */
  serial: string;
  /** Every digit the operator gave (8 or 16). */
  serialFull: string;
  owner: string;
  name: string;
  /** Model learned from traffic, null until seen. */
  model: PiModel | null;
  /** Base the root was copied from; null for --own-filesystem. */
  base: string | null;
  /** Learned MAC, else the configured one, else upstream's derived b8:27:eb:… MAC. */
  mac: string;
  /** True when `mac` is only upstream's guess from the serial (never seen, none configured). */
  macDerived: boolean;
  macSource: MacSource;
  /** Last IPv4 the Pi used, else its static address, null if neither. */
  ip: string | null;
  /** The fixed address full-DHCP mode hands this Pi (`--ip`); null when none. */
  staticIp: string | null;
  /** ISO time of the last packet we saw from it. */
  lastSeen: string | null;
  ownFilesystem: boolean;
  addedAt: string;
  tftpDir: string;
  nfsDir: string;
  /** The Pi's docker disk: an ext4 image in its root, loop-mounted at /var/lib/docker on the Pi; null when none. */
  dockerDisk: DockerDiskJson | null;
  /** What add prepared for the first login (never the password hash); null when nothing. */
  firstLogin: FirstLoginJson | null;
}

export interface DockerDiskJson {
  /** The image on the server (`<nfsDir>/var/lib/iot-tofu/docker.img`). */
  path: string;
  /** Its size (apparent; the file is sparse). */
  bytes: number;
}

export interface FirstLoginJson {
  /** The user userconf.txt creates on first boot; null when only SSH keys were given (root's). */
  user: string | null;
  /** Number of public keys written to authorized_keys. */
  sshKeys: number;
}

/** A Pi (or Pi-looking client) seen on the network but not registered. */
export interface DiscoveredPi {
  serial: string | null;
  mac: string;
  ip: string | null;
  model: PiModel | null;
  firstSeen: string;
  lastSeen: string;
}

export interface BaseJson {
  name: string;
  /** `<nfsRoot>/bases/<name>` */
  rootDir: string;
  /** Boot files of this base, kept under the state dir. */
  bootDir: string;
  /** The base whose boot files are in `<tftpRoot>/base/`. */
  default: boolean;
  /** 'bookworm' when the root has /boot/firmware, else 'legacy' (/boot). */
  layout: 'bookworm' | 'legacy';
  source: string;
  importedAt: string;
  /** Bytes and files of the root tree (for progress and disk planning). */
  bytes: number;
  files: number;
}

export interface AddRequest {
  /** 8 or 16 hex digits, any case, leading zeros kept. */
  serial: string;
  owner: string;
  /** Host name of the Pi (RFC 1123 label). */
  name: string;
  /** Base name; required unless ownFilesystem. */
  base?: string;
  /** The Pi's real MAC when known (Pi 4/5 MACs are not derived from the serial). */
  mac?: string;
  /** Upstream menu option 1: create empty folders and cmdline.txt; the operator fills the root. */
  ownFilesystem?: boolean;
  /** config.txt content for this Pi only (overrides the base's). */
  configTxt?: string;
  /**
   * Size of the Pi's docker disk ('8G', '512M', bytes; '0' = none): a sparse ext4 image in its
   * root, loop-mounted at /var/lib/docker. Default: the fleet's `dockerDiskDefault`. The boolean
   * of earlier releases (a /dev/sda1 fstab line) still reads: true = the default size (8G when
   * that is 0), false = none.
   */
  dockerDisk?: string | boolean;
  /** Public keys (authorized_keys lines) for SSH: the first user's when `user` is given, else root's. */
  sshKeys?: string;
  /** First user: Pi OS's userconfig renames its uid-1000 user to this name on first boot (userconf.txt). */
  user?: string;
  /** crypt(3) hash for `user` ($6$ sha512crypt or $y$ yescrypt); a plain password is refused. */
  passwordHash?: string;
  /** A fixed address for this Pi, handed out by the daemon in full-DHCP mode (`--ip`). */
  ip?: string;
}

export interface Progress {
  phase: 'copy' | 'extract-boot' | 'extract-root' | 'decompress';
  /** Bytes done and expected (total 0 = unknown). */
  done: number;
  total: number;
}

export interface ProgressOptions {
  onProgress?: (progress: Progress) => void;
}

export interface AddResult {
  pi: PiJson;
  /** How the root was copied: reflink (copy-on-write) or a full copy; 'none' for own filesystem. */
  copyMode: 'reflink' | 'full' | 'none';
  /** The cmdline.txt written for the Pi (one line). */
  cmdline: string;
  /** Arguments of the base's cmdline.txt left out for the NFS root (e.g. Imager's systemd.run=). */
  cmdlineDropped: string[];
  ms: number;
}

export type SetupSource =
  | { kind: 'image'; image: string }
  | { kind: 'tarballs'; boot: string; root: string }
  | { kind: 'dirs'; boot: string; root: string };

export interface SetupRequest {
  base: string;
  source: SetupSource;
  /** Put this base's boot files in `<tftpRoot>/base/` (default: when it is the first base). */
  makeDefault?: boolean;
}

export interface SetupResult {
  base: BaseJson;
  ms: number;
}

export interface ResizeDockerDiskResult {
  serial: string;
  /** Size before and after. */
  fromBytes: number;
  bytes: number;
}

export interface RemoveResult {
  serial: string;
  /** False when nothing was there (remove is idempotent). */
  removed: boolean;
}

export interface SeenFact {
  serial?: string;
  mac: string;
  ip?: string;
  model?: PiModel;
  at: Date | string | number;
}

/** One boot timeline entry: `type` like 'pi-seen', 'offer-sent', 'file-served', 'transfer-failed'. */
export interface TimelineEvent {
  at: string;
  type: string;
  [key: string]: unknown;
}

export interface RegistryChange {
  added: string[];
  removed: string[];
  changed: string[];
}

/** Fleet.health(): nfsd and exports state for /healthz. */
export interface FleetHealth extends NfsHealth {
  exportsFile: string;
  exportsClients: string;
  /** Complaints of the last `exportfs -ra` about exports files that are not ours (our change was applied anyway). */
  foreignExportsIssues?: { at: string; messages: string[] };
}
