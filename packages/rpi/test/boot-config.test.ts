import { describe, expect, it } from 'vitest';
import {
  checkHostname,
  isValidHostname,
  normalizeConfigTxt,
  renderConfigTxt,
  renderFstab,
  renderHostname,
  renderHosts,
  renderOwnerFile,
  renderDockerDiskUnits,
  renderDockerDiskDropIn,
  renderUserconf,
  DOCKER_DISK_PATH,
  DOCKER_DISK_FSCK_UNIT,
  DOCKER_DISK_MOUNT_UNIT,
  CONTAINERD_MOUNT_UNIT,
} from '../src/index.js';

describe('boot-config renderers', () => {
  it.each([
    { layout: 'bookworm', mount: '/boot/firmware' },
    { layout: 'legacy', mount: '/boot' },
  ])(
    'fstab mounts the TFTP folder on $mount (docs/pxetools-compat.md E10) and nothing else (the docker disk is mounted by units)',
    ({ mount }) => {
      const text = renderFstab({ serverIp: '192.168.10.10', bootExportPath: '/tftpboot/9f55bbfd', bootMountPoint: mount });
      const lines = [
        'proc /proc proc defaults 0 0',
        `192.168.10.10:/tftpboot/9f55bbfd ${mount} nfs defaults,_netdev,vers=3,proto=tcp,nolock 0 0`,
      ];
      expect(text).toBe(`${lines.join('\n')}\n`);
    },
  );

  it('docker disk units: fsck before the loop mount, nofail, before docker and containerd, containerd bound from the image', () => {
    const units = renderDockerDiskUnits('/usr/sbin/e2fsck');
    expect(Object.keys(units).sort()).toEqual([CONTAINERD_MOUNT_UNIT, DOCKER_DISK_FSCK_UNIT, DOCKER_DISK_MOUNT_UNIT].sort());
    const mount = units[DOCKER_DISK_MOUNT_UNIT]!;
    expect(mount).toContain(`What=${DOCKER_DISK_PATH}\nWhere=/var/lib/docker\nType=ext4\nOptions=loop,nofail,noatime\n`);
    expect(mount).toContain('Before=docker.service containerd.service');
    expect(mount).toContain(`Requires=${DOCKER_DISK_FSCK_UNIT}\nAfter=${DOCKER_DISK_FSCK_UNIT}`);
    expect(units[DOCKER_DISK_FSCK_UNIT]).toContain(`ExecStart=/usr/sbin/e2fsck -p ${DOCKER_DISK_PATH}\nSuccessExitStatus=1`);
    expect(units[CONTAINERD_MOUNT_UNIT]).toContain('Where=/var/lib/containerd');
    expect(renderDockerDiskDropIn()).toContain('RequiresMountsFor=/var/lib/docker /var/lib/containerd');
  });

  const SHA512 = '$6$c70VpvPsVNCG0YR5$l5vWWLsLko9Kj65gcQ8qvMkuOoRkEagI90qi3F/Y7rm8eNYZHW8CY6BOIKwMH7a3YYzZYL90zf304cAHLFaZE0';
  const YESCRYPT = '$y$j9T$PaV0S7eNqVe3A9s1Rr0Gl/$YrV0x1wNm5uW3aYqFzX3g7nQm2vWmJb8x0HfYQ1pS7D';
  it.each([
    [SHA512, true],
    [YESCRYPT, true],
    ['$6$rounds=5000$saltsalt$' + 'a'.repeat(86), true],
    ['raspberry', false],
    ['$1$abc$def', false],
    [SHA512.slice(0, -1), false],
    [`${SHA512}\n`, false],
    [`${SHA512}:x`, false],
  ])('userconf.txt takes only crypt hashes: %s → %s', (hash, ok) => {
    if (ok) expect(renderUserconf('jo', hash)).toBe(`jo:${hash}\n`);
    else expect(() => renderUserconf('jo', hash)).toThrow(/crypt\(3\) hash/);
  });

  it.each(['root', 'Jo', '1jo', 'a'.repeat(33), 'jo:x', ''])('userconf.txt refuses user name %j', (user) => {
    expect(() => renderUserconf(user, SHA512)).toThrow(/not a valid Pi OS user name/);
  });

  it.each([
    ['rpi4', true],
    ['pi-two', true],
    ['123', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['-pi', false],
    ['pi-', false],
    ['pi_two', false],
    ['pi.local', false],
    ['', false],
    ['pi;rm -rf /', false],
    ['pi\nx', false],
  ])('hostname %j valid: %s', (name, valid) => {
    expect(isValidHostname(name)).toBe(valid);
    if (valid) expect(renderHostname(name)).toBe(`${name}\n`);
    else expect(() => checkHostname(name)).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
  });

  it('hosts maps the Pi name to 127.0.1.1', () => {
    expect(renderHosts('rpi4')).toContain('\n127.0.1.1\trpi4\n');
    expect(renderHosts('rpi4').startsWith('127.0.0.1\tlocalhost\n')).toBe(true);
  });

  it('config.txt sections and free text', () => {
    expect(
      renderConfigTxt([
        { filter: 'all', lines: ['arm_64bit=1', 'dtparam=i2c_arm=on'] },
        { filter: 'pi4', lines: ['arm_boost=1'] },
      ]),
    ).toBe('[all]\narm_64bit=1\ndtparam=i2c_arm=on\n[pi4]\narm_boost=1\n');
    expect(() => renderConfigTxt([{ filter: 'all]\n[x', lines: [] }])).toThrow();
    expect(normalizeConfigTxt('a=1\r\nb=2')).toBe('a=1\nb=2\n');
    expect(renderOwnerFile('jo')).toBe('jo\n');
    expect(() => renderOwnerFile('jo\nroot')).toThrow();
  });
});
