import { describe, expect, it } from 'vitest';
import { netbootCmdline, splitCmdline } from '../src/index.js';

const target = { serverIp: '192.168.10.10', nfsRootPath: '/nfs/9f55bbfd' };
const NFS = 'root=/dev/nfs nfsroot=192.168.10.10:/nfs/9f55bbfd,vers=3,tcp rw ip=dhcp';

describe('cmdline.txt of a netbooted Pi: the base line, SD options replaced', () => {
  it.each([
    {
      name: 'Pi OS trixie as Imager leaves it (firstboot, regdom, quiet)',
      base: 'console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot cfg80211.ieee80211_regdom=DE\n',
      line: `console=serial0,115200 console=tty1 ${NFS} rootwait quiet cfg80211.ieee80211_regdom=DE cgroup_enable=cpuset cgroup_enable=memory`,
      dropped: ['rootfstype=ext4', 'fsck.repair=yes', 'init=/usr/lib/raspberrypi-sys-mods/firstboot'],
    },
    {
      name: "Imager's first-run script is not carried over",
      base: 'console=serial0,115200 console=tty1 root=PARTUUID=x-02 rootfstype=ext4 fsck.repair=yes rootwait quiet splash plymouth.ignore-serial-consoles systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target',
      line: `console=serial0,115200 console=tty1 ${NFS} rootwait quiet splash plymouth.ignore-serial-consoles cgroup_enable=cpuset cgroup_enable=memory`,
      dropped: [
        'rootfstype=ext4',
        'fsck.repair=yes',
        'systemd.run=/boot/firstrun.sh',
        'systemd.run_success_action=reboot',
        'systemd.unit=kernel-command-line.target',
      ],
    },
    {
      name: 'legacy Raspbian: init_resize, elevator, cgroup_memory, ro',
      base: 'dwc_otg.lpm_enable=0 console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 elevator=deadline ro rootwait init=/usr/lib/raspi-config/init_resize.sh cgroup_memory=1 cgroup_enable=memory',
      line: `dwc_otg.lpm_enable=0 console=serial0,115200 console=tty1 ${NFS} rootwait cgroup_enable=memory cgroup_enable=cpuset`,
      dropped: ['rootfstype=ext4', 'elevator=deadline', 'init=/usr/lib/raspi-config/init_resize.sh', 'cgroup_memory=1'],
    },
    {
      name: 'a base already netbooted elsewhere: its nfsroot and ip are replaced, not doubled',
      base: 'console=tty1 root=/dev/nfs nfsroot=10.0.0.1:/srv/pi,vers=4.1,proto=tcp rw ip=dhcp rootwait',
      line: `console=tty1 ${NFS} rootwait cgroup_enable=cpuset cgroup_enable=memory`,
      dropped: [],
    },
    {
      name: 'no root= at all: the NFS group goes after the consoles',
      base: 'console=serial0,115200 console=tty1 quiet',
      line: `console=serial0,115200 console=tty1 ${NFS} quiet cgroup_enable=cpuset cgroup_enable=memory`,
      dropped: [],
    },
    {
      name: 'a missing or empty cmdline.txt: Pi OS consoles',
      base: undefined,
      line: `console=serial0,115200 console=tty1 ${NFS} rootwait cgroup_enable=cpuset cgroup_enable=memory`,
      dropped: [],
    },
    {
      name: 'only the first line counts (the firmware ignores the rest), CRLF tolerated',
      base: 'console=tty1 root=PARTUUID=x-02 rootwait\r\ncgroup_memory=1 second-line\r\n',
      line: `console=tty1 ${NFS} rootwait cgroup_enable=cpuset cgroup_enable=memory`,
      dropped: [],
    },
  ])('$name', ({ base, line, dropped }) => {
    const result = netbootCmdline(base, target);
    expect(result.text).toBe(`${line}\n`);
    expect(result.text.trimEnd().split('\n')).toHaveLength(1);
    expect(result.dropped).toEqual(dropped);
  });

  it('keeps double-quoted values whole', () => {
    expect(splitCmdline('a="b c" d')).toEqual(['a="b c"', 'd']);
    expect(netbootCmdline('console=tty1 root=/dev/x dyndbg="file x +p"', target).text).toContain(' dyndbg="file x +p" ');
  });

  it('refuses an NFS path nfsroot cannot carry', () => {
    expect(() => netbootCmdline(undefined, { serverIp: '10.0.0.1', nfsRootPath: '/nfs/x y' })).toThrow(/blanks or commas/);
    expect(() => netbootCmdline(undefined, { serverIp: '10.0.0.1', nfsRootPath: '/nfs/a,b' })).toThrow(/blanks or commas/);
    expect(() => netbootCmdline(undefined, { serverIp: '10.0.0.1', nfsRootPath: 'nfs/x' })).toThrow(/absolute/);
  });
});
