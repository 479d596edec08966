import { describe, expect, it } from 'vitest';
import { DhcpOption, decideProxyReply, decodeDhcpMessage, encodeDhcpMessage, asciiBytes, validateProxyPolicy } from '@iot-tofu/dhcp';
import { encodePiGuid } from '@iot-tofu/rpi';
import { DEFAULT_CONFIG, type BootServerConfig } from '../src/config.js';
import { proxyPolicy } from '../src/proxy-policy.js';

const PI4 = {
  mac: 'dc:a6:32:01:36:c2',
  serial: 'ab5a4158',
  guid: encodePiGuid(
    { kind: 'fourcc', model: 'pi4', boardRevision: 0xc03111, macLow: '00:00:00:00', serial: 'ab5a4158' },
    'dc:a6:32:01:36:c2',
  ),
};
const PI3 = { mac: 'b8:27:eb:55:bb:fd', guid: encodePiGuid({ kind: 'pi3-rom' }) };

/** A Pi bootloader's DISCOVER (docs/pi-netboot-protocol.md 2.1), decoded as the server sees it. */
function discover(pi: { mac: string; guid: Uint8Array }) {
  return decodeDhcpMessage(
    encodeDhcpMessage({
      op: 1,
      xid: 0x26f30339,
      chaddr: pi.mac,
      options: [
        [53, Uint8Array.of(1)],
        [93, Uint8Array.of(0, 0)],
        [94, Uint8Array.of(1, 2, 1)],
        [97, pi.guid],
        [60, asciiBytes('PXEClient:Arch:00000:UNDI:002001')],
      ],
    }),
  );
}

type Keys = Partial<Pick<BootServerConfig, 'option66' | 'threeSpaceMenu'>>;

/** What goes on the wire for a Pi under a config: the menu text and option 66. */
function answer(keys: Keys, pi: { mac: string; guid: Uint8Array }) {
  const config = { ...DEFAULT_CONFIG, serverIp: '10.77.0.2', ...keys };
  const policy = validateProxyPolicy(proxyPolicy(config, { isRegistered: () => true }));
  const decision = decideProxyReply(discover(pi), { port: 'dhcp', policy });
  if (decision.action !== 'reply') throw new Error(`no reply: ${decision.reason}`);
  const menu = Buffer.from(decision.reply.options.get(DhcpOption.VendorSpecific) ?? []).toString('latin1');
  const option66 = decision.reply.options.get(DhcpOption.TftpServerName);
  return {
    threeSpaces: menu.includes('Raspberry Pi Boot   '),
    plainMenu: menu.includes('Raspberry Pi Boot'),
    option66: option66 ? Buffer.from(option66).toString('latin1') : undefined,
  };
}

describe('proxyPolicy: config keys reach the offer', () => {
  it.each<[string, Keys, typeof PI4 | typeof PI3, { threeSpaces: boolean; option66?: string }]>([
    ['defaults', {}, PI4, { threeSpaces: false }],
    ['option66', { option66: '10.77.0.9' }, PI4, { threeSpaces: false, option66: '10.77.0.9' }],
    ['threeSpaceMenu true', { threeSpaceMenu: true }, PI4, { threeSpaces: true }],
    ['threeSpaceMenu false', { threeSpaceMenu: false }, PI3, { threeSpaces: false }],
    ['threeSpaceMenu empty list', { threeSpaceMenu: [] }, PI3, { threeSpaces: false }],
    ['listed by serial', { threeSpaceMenu: ['ab5a4158'] }, PI4, { threeSpaces: true }],
    ['listed by MAC (a Pi 3 ROM has no serial in option 97)', { threeSpaceMenu: ['b8:27:eb:55:bb:fd'] }, PI3, { threeSpaces: true }],
    ['another Pi listed', { threeSpaceMenu: ['b8:27:eb:55:bb:fd', '0badf00d'] }, PI4, { threeSpaces: false }],
    ['both keys', { threeSpaceMenu: ['dc:a6:32:01:36:c2'], option66: '10.77.0.9' }, PI4, { threeSpaces: true, option66: '10.77.0.9' }],
  ])('%s', (_label, keys, pi, expected) => {
    const got = answer(keys, pi);
    expect(got.plainMenu).toBe(true);
    expect({ threeSpaces: got.threeSpaces, ...(got.option66 ? { option66: got.option66 } : {}) }).toEqual(expected);
  });

  it('hands the admission gate and the registry lookup through', () => {
    const config = { ...DEFAULT_CONFIG, serverIp: '10.77.0.2' };
    const policy = proxyPolicy(config, { isRegistered: () => false, admit: () => false });
    expect(decideProxyReply(discover(PI4), { port: 'dhcp', policy })).toMatchObject({ action: 'ignore', reason: 'pi-not-registered' });
    const gated = proxyPolicy(config, { isRegistered: () => true, admit: () => false });
    expect(decideProxyReply(discover(PI4), { port: 'dhcp', policy: gated })).toMatchObject({ action: 'ignore', reason: 'deferred' });
  });
});
