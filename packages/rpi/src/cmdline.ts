import { IotTofuError } from '@iot-tofu/errors';

/**
 * cmdline.txt of a netbooted Pi: the base's own line (what Raspberry Pi OS or Imager wrote for an SD
 * card) with the SD-card arguments replaced by the NFS-root ones. Pure; the table below is the
 * whole policy and is mirrored in the fleet README.
 */

/**
 * NFS options of the root mount. Pi OS mounts its root in the initramfs with klibc `nfsmount`,
 * which knows `vers=2|3` and `tcp|udp` only: `vers=4.1` fails with "invalid value for vers" and
 * `proto=tcp` with "bad option 'proto'" (raspberrypi/documentation#3205, bookworm-feedback#93). The
 * kernel's own nfsroot (no initramfs) accepts the same two. klibc mounts without NLM locking.
 */
export const NFS_ROOT_MOUNT_OPTIONS = 'vers=3,tcp';

/** What happens to an argument of the base's line, and why (shown in the fleet README). */
export interface CmdlineRule {
  /** Argument name (`root`, `quiet`) or `name=value` for one exact argument. */
  readonly arg: string;
  readonly action: 'replace' | 'drop';
  readonly why: string;
}

export const CMDLINE_RULES: readonly CmdlineRule[] = [
  { arg: 'root', action: 'replace', why: 'the SD card partition; the root is root=/dev/nfs nfsroot=<server>:<path>,vers=3,tcp' },
  { arg: 'nfsroot', action: 'replace', why: "ours points at this Pi's export" },
  { arg: 'ip', action: 'replace', why: 'ip=dhcp: the initramfs (or kernel) configures eth0 before mounting the root' },
  { arg: 'ro', action: 'replace', why: 'the NFS root is mounted rw (no fsck of an NFS root)' },
  { arg: 'rw', action: 'replace', why: 'kept once, in the NFS-root group' },
  { arg: 'rootfstype', action: 'drop', why: 'ext4 of the SD card; the type of an NFS root comes from root=/dev/nfs' },
  { arg: 'fsck.repair', action: 'drop', why: 'nothing to check: the root is on the server' },
  { arg: 'fsck.mode', action: 'drop', why: 'nothing to check: the root is on the server' },
  {
    arg: 'init=/usr/lib/raspberrypi-sys-mods/firstboot',
    action: 'drop',
    why: 'Pi OS first boot grows the SD root partition and rewrites its PARTUUIDs; add sets hostname and host keys itself',
  },
  { arg: 'init=/usr/lib/raspi-config/init_resize.sh', action: 'drop', why: 'pre-bookworm first boot: resizes the SD root partition' },
  {
    arg: 'systemd.run',
    action: 'drop',
    why: "Imager's firstrun.sh sets hostname, user and Wi-Fi for an SD card and then reboots; add owns the hostname, the script is reported, not run",
  },
  { arg: 'systemd.run_success_action', action: 'drop', why: 'belongs to the dropped systemd.run= firstrun script' },
  { arg: 'systemd.unit=kernel-command-line.target', action: 'drop', why: 'belongs to the dropped systemd.run= firstrun script' },
  { arg: 'elevator', action: 'drop', why: 'obsolete since Linux 5.0 (blk-mq); ignored with a warning' },
  { arg: 'cgroup_memory', action: 'drop', why: 'obsolete and ignored by current Pi kernels; cgroup_enable=memory is the switch' },
];

/**
 * Arguments we add when the base does not have them: the controllers Docker needs. Current Pi OS
 * kernels (6.6, 6.12) run cgroup v2 and turn the memory controller off in the device tree's
 * bootargs (`cgroup_disable=memory`, which the firmware puts before cmdline.txt);
 * `cgroup_enable=memory` later on the line turns it back on, and `cgroup_memory=1` (the old
 * downstream switch) is ignored, so it is dropped above. On 6.12 (CONFIG_MEMCG_V1 off) check
 * /sys/fs/cgroup/cgroup.controllers for `memory`, not /proc/cgroups. `cgroup_enable=cpuset` is
 * harmless where cpuset is already on and keeps older kernels working.
 * Sources: raspberrypi/linux PR #6439 and issue #6980; moby#35587; pi-gen#917; k3s#8890
 * (docs/pi-netboot-protocol.md section 9).
 */
export const CMDLINE_ADDED = ['cgroup_enable=cpuset', 'cgroup_enable=memory'] as const;

/** The line used when a base has no cmdline.txt (or an empty one): Pi OS's consoles, then ours. */
export const DEFAULT_BASE_CMDLINE = 'console=serial0,115200 console=tty1 rootwait';

export interface NetbootCmdlineOptions {
  serverIp: string;
  /** The exported root path, e.g. /nfs/9f55bbfd. */
  nfsRootPath: string;
}

export interface NetbootCmdline {
  /** cmdline.txt content: one line and a newline. */
  text: string;
  /** Base arguments left out, in their order (for the operator: e.g. Imager's systemd.run=). */
  dropped: string[];
}

/** Splits a kernel command line into arguments; a double-quoted value keeps its blanks. */
export function splitCmdline(line: string): string[] {
  const args: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of line) {
    if (char === '"') quoted = !quoted;
    if (!quoted && /\s/.test(char)) {
      if (current) args.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  if (current) args.push(current);
  return args;
}

function ruleFor(arg: string): CmdlineRule | undefined {
  const name = arg.split('=', 1)[0] ?? arg;
  return CMDLINE_RULES.find((rule) => rule.arg === arg) ?? CMDLINE_RULES.find((rule) => rule.arg === name);
}

/**
 * The Pi's cmdline.txt from the base's: the firmware reads the first line only, so only that line
 * counts. The NFS-root group (root, nfsroot, rw, ip) takes the place of the base's `root=`
 * (after the consoles when there was none); every other argument keeps its place.
 */
export function netbootCmdline(baseText: string | undefined, options: NetbootCmdlineOptions): NetbootCmdline {
  if (/[\s,]/.test(options.nfsRootPath) || !options.nfsRootPath.startsWith('/')) {
    throw new IotTofuError(
      'INVALID_CMDLINE',
      `NFS root path ${JSON.stringify(options.nfsRootPath)} must be absolute, without blanks or commas`,
    );
  }
  const firstLine = (baseText ?? '').replace(/\r/g, '').split('\n')[0]?.trim() ?? '';
  const baseArgs = splitCmdline(firstLine || DEFAULT_BASE_CMDLINE);
  const nfsGroup = ['root=/dev/nfs', `nfsroot=${options.serverIp}:${options.nfsRootPath},${NFS_ROOT_MOUNT_OPTIONS}`, 'rw', 'ip=dhcp'];
  const out: string[] = [];
  const dropped: string[] = [];
  let placed = false;
  for (const arg of baseArgs) {
    const rule = ruleFor(arg);
    if (!rule) {
      out.push(arg);
      continue;
    }
    if (rule.action === 'drop') dropped.push(arg);
    if (rule.action === 'replace' && rule.arg === 'root' && !placed) {
      out.push(...nfsGroup);
      placed = true;
    }
  }
  if (!placed) {
    const afterConsoles = out.reduce((at, arg, i) => (arg.startsWith('console=') ? i + 1 : at), 0);
    out.splice(afterConsoles, 0, ...nfsGroup);
  }
  for (const arg of CMDLINE_ADDED) if (!out.includes(arg)) out.push(arg);
  return { text: `${out.join(' ')}\n`, dropped };
}
