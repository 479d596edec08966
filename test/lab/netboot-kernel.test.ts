import { describe, expect, it } from 'vitest';
import { initramfsCacheKey, ipxeScript, PI_OS_CMDLINE, sharedLibraries, withSerialConsole } from './netboot-kernel.js';

describe('netboot-kernel helpers', () => {
  it('replaces only the console= arguments of a Pi cmdline with the first serial port, in place', () => {
    expect(withSerialConsole(PI_OS_CMDLINE)).toBe(
      'console=ttyS0,115200 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot cfg80211.ieee80211_regdom=DE',
    );
    expect(withSerialConsole('root=/dev/nfs console=tty1 rw\n')).toBe('root=/dev/nfs console=ttyS0,115200 rw');
    expect(withSerialConsole('root=/dev/nfs rw')).toBe('console=ttyS0,115200 root=/dev/nfs rw');
  });

  it("writes an iPXE script that fetches the Pi's own kernel8.img and initramfs8 by absolute URL", () => {
    expect(
      ipxeScript({
        serverIp: '10.77.0.2',
        folder: 'c0ffee42',
        cmdline: 'console=serial0,115200 console=tty1 root=/dev/nfs nfsroot=10.77.0.2:/nfs/c0ffee42,vers=3,tcp ip=dhcp\n',
      }).split('\n'),
    ).toEqual([
      '#!ipxe',
      'echo iot-tofu: netbooting c0ffee42 like its Pi firmware would',
      'kernel tftp://10.77.0.2/c0ffee42/kernel8.img console=ttyS0,115200 root=/dev/nfs nfsroot=10.77.0.2:/nfs/c0ffee42,vers=3,tcp ip=dhcp',
      'initrd tftp://10.77.0.2/c0ffee42/initramfs8',
      'boot',
      '',
    ]);
  });

  it('reads the libraries out of ldd output (vdso has no path and is skipped)', () => {
    const ldd =
      '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibresolv.so.2 => /lib/x86_64-linux-gnu/libresolv.so.2 (0x00007fd507901000)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fd50771f000)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007fd5079e4000)\n';
    expect(sharedLibraries(ldd)).toEqual([
      '/lib/x86_64-linux-gnu/libresolv.so.2',
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/lib64/ld-linux-x86-64.so.2',
    ]);
    expect(sharedLibraries('\tnot a dynamic executable\n')).toEqual([]);
  });

  it('keys the initramfs cache by kernel version and the kernel file', () => {
    const kernel = { version: '6.1.0-57-amd64', vmlinuz: '/boot/vmlinuz-6.1.0-57-amd64' };
    const key = initramfsCacheKey(kernel, { size: 1, mtimeMs: 2 });
    expect(key).toMatch(/^6\.1\.0-57-amd64-[0-9a-f]{16}$/);
    expect(initramfsCacheKey(kernel, { size: 1, mtimeMs: 3 })).not.toBe(key);
  });
});
