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
} from '../src/index.js';

describe('boot-config renderers', () => {
  it.each([
    { layout: 'bookworm', mount: '/boot/firmware', docker: false },
    { layout: 'legacy', mount: '/boot', docker: true },
  ])('fstab mounts the TFTP folder on $mount (E10), docker disk nofail only on request (E11)', ({ mount, docker }) => {
    const text = renderFstab({ serverIp: '192.168.10.10', bootExportPath: '/tftpboot/9f55bbfd', bootMountPoint: mount, dockerDisk: docker });
    const lines = ['proc /proc proc defaults 0 0', `192.168.10.10:/tftpboot/9f55bbfd ${mount} nfs defaults,_netdev,vers=3,proto=tcp,nolock 0 0`];
    if (docker) lines.push('/dev/sda1 /var/lib/docker ext4 noatime,nofail,x-systemd.device-timeout=10s 0 2');
    expect(text).toBe(`${lines.join('\n')}\n`);
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
    expect(renderConfigTxt([{ filter: 'all', lines: ['arm_64bit=1', 'dtparam=i2c_arm=on'] }, { filter: 'pi4', lines: ['arm_boost=1'] }])).toBe('[all]\narm_64bit=1\ndtparam=i2c_arm=on\n[pi4]\narm_boost=1\n');
    expect(() => renderConfigTxt([{ filter: 'all]\n[x', lines: [] }])).toThrow();
    expect(normalizeConfigTxt('a=1\r\nb=2')).toBe('a=1\nb=2\n');
    expect(renderOwnerFile('jo')).toBe('jo\n');
    expect(() => renderOwnerFile('jo\nroot')).toThrow();
  });
});
