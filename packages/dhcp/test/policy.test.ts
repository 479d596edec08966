import { describe, expect, it } from 'vitest';
import {
  PI3_ROM_XID,
  decideProxyReply,
  decodeDhcpMessage,
  decodePxeMenu,
  decodePxeVendorOptions,
  encodeDhcpMessage,
  maxReplySize,
  offersRaspberryPiBoot,
  replyDestination,
  validateProxyPolicy,
  type DhcpMessage,
  type IgnoreReason,
  type ProxyPolicy,
  type ProxyPort,
} from '../src/index.js';
import { fixturePath } from './fixtures.js';
import { readUdpFrames } from './pcap.js';
import { PXE_ARCH0, pi3RomGuid, pi4Guid, request } from './requests.js';

const S = '10.77.0.2';
const hex = (bytes: Uint8Array | undefined) => (bytes ? Buffer.from(bytes).toString('hex') : undefined);

function policy(overrides: Partial<ProxyPolicy> = {}): ProxyPolicy {
  return {
    serverIp: S,
    answer: 'any-pi',
    isRegistered: ({ mac, serial }) => mac === 'dc:a6:32:00:00:01' || serial === 'ab5a4158',
    pxe: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi', uefiArm64: 'snp-arm64.efi', ipxeScript: 'boot.ipxe' },
    pi3RepeatDelayMs: 1200,
    ...overrides,
  };
}

const pi4 = request({ mac: 'dc:a6:32:01:36:c2', vendorClass: PXE_ARCH0, arch: 0, guid: pi4Guid });
const pi3 = request({ mac: 'b8:27:eb:64:24:7d', xid: PI3_ROM_XID, vendorClass: PXE_ARCH0, arch: 0, guid: pi3RomGuid });
const piNoGuid = request({ mac: 'e4:5f:01:00:00:02', vendorClass: PXE_ARCH0, arch: 0 });
const bios = request({ mac: '52:54:00:12:34:56', vendorClass: PXE_ARCH0, arch: 0, guid: new Uint8Array(17) });
const uefiX64 = request({
  mac: '52:54:00:77:00:31',
  vendorClass: 'PXEClient:Arch:00007:UNDI:003000',
  arch: 7,
  guid: new Uint8Array(17).fill(7),
});
const uefiX64Request = request({
  mac: '52:54:00:77:00:31',
  type: 3,
  ciaddr: '10.77.0.148',
  vendorClass: 'PXEClient:Arch:00007:UNDI:003000',
  arch: 7,
  guid: new Uint8Array(17).fill(7),
});
const uefiArm64 = request({ mac: '52:54:00:77:00:21', vendorClass: 'PXEClient:Arch:00011:UNDI:003000', arch: 11 });
const uefiHttp = request({ mac: '52:54:00:77:00:22', vendorClass: 'HTTPClient:Arch:00016:UNDI:003001', arch: 16 });
const ipxe = request({ mac: '52:54:00:77:00:11', vendorClass: PXE_ARCH0, arch: 0, userClass: 'iPXE', etherboot: true });
const plainDhcp = request({ mac: 'dc:a6:32:00:00:09', vendorClass: 'udhcp 1.35.0' });

type Expect =
  | { reason: IgnoreReason }
  | {
      kind: string;
      type: number;
      file?: string;
      siaddr?: string;
      sname?: string;
      option43?: string | null;
      option66?: string;
      repeatAfterMs?: number;
    };

const table: Array<[string, DhcpMessage, ProxyPort, Partial<ProxyPolicy>, Expect]> = [
  [
    'Pi 4 (any-pi) gets the Pi menu, no file, siaddr 0',
    pi4,
    'dhcp',
    {},
    { kind: 'pi', type: 2, file: '', siaddr: '0.0.0.0', option43: 'pi' },
  ],
  ['Pi 4 registered by serial (registered mode)', pi4, 'dhcp', { answer: 'registered' }, { kind: 'pi', type: 2, option43: 'pi' }],
  ['unregistered Pi in registered mode stays unanswered', piNoGuid, 'dhcp', { answer: 'registered' }, { reason: 'pi-not-registered' }],
  ['answer none: even a registered Pi gets nothing', pi4, 'dhcp', { answer: 'none' }, { reason: 'pi-answer-none' }],
  ['admission gate says not now', pi4, 'dhcp', { admit: () => false }, { reason: 'deferred' }],
  ['admission gate says yes', pi4, 'dhcp', { admit: (c) => c.serial === 'ab5a4158' }, { kind: 'pi', type: 2, option43: 'pi' }],
  ['Pi 3B ROM gets the repeat', pi3, 'dhcp', {}, { kind: 'pi', type: 2, option43: 'pi', repeatAfterMs: 1200 }],
  ['Pi 3B ROM repeat can be turned off', pi3, 'dhcp', { pi3RepeatDelayMs: 0 }, { kind: 'pi', type: 2, option43: 'pi' }],
  [
    'three-space menu for chosen clients',
    pi3,
    'dhcp',
    { threeSpaceMenu: (c) => c.pi3RomLike },
    { kind: 'pi', type: 2, option43: 'pi3', repeatAfterMs: 1200 },
  ],
  ['option 66 for Pis', pi4, 'dhcp', { option66: '10.77.0.9' }, { kind: 'pi', type: 2, option43: 'pi', option66: '10.77.0.9' }],
  [
    'Pi REQUEST on 4011 gets an ACK with the menu',
    request({ mac: 'dc:a6:32:01:36:c2', type: 3, ciaddr: '10.77.0.120', vendorClass: PXE_ARCH0, arch: 0, guid: pi4Guid }),
    'pxe',
    {},
    { kind: 'pi', type: 5, option43: 'pi' },
  ],
  [
    'BIOS PXE gets skip-discovery, siaddr, sname and file',
    bios,
    'dhcp',
    {},
    { kind: 'bios', type: 2, file: 'undionly.kpxe', siaddr: S, sname: S, option43: '060108ff' },
  ],
  [
    'BIOS without a configured file gets nothing',
    bios,
    'dhcp',
    { pxe: { uefiX64: 'ipxe.efi', ipxeScript: 'boot.ipxe' } },
    { reason: 'no-boot-file' },
  ],
  [
    'UEFI x64 gets its file and no option 43',
    uefiX64,
    'dhcp',
    {},
    { kind: 'uefi-x64', type: 2, file: 'ipxe.efi', siaddr: S, sname: S, option43: null },
  ],
  [
    'UEFI x64 REQUEST on 4011 gets the ACK with the same file',
    uefiX64Request,
    'pxe',
    {},
    { kind: 'uefi-x64', type: 5, file: 'ipxe.efi', siaddr: S, option43: null },
  ],
  ['UEFI arm64 gets its file', uefiArm64, 'dhcp', {}, { kind: 'uefi-arm64', type: 2, file: 'snp-arm64.efi', option43: null }],
  ['UEFI arm64 without a file gets nothing', uefiArm64, 'dhcp', { pxe: { bios: 'undionly.kpxe' } }, { reason: 'no-boot-file' }],
  ['UEFI HTTP is not served (no URL configured)', uefiHttp, 'dhcp', {}, { reason: 'no-boot-file' }],
  [
    'iPXE gets the script as an absolute tftp URL',
    ipxe,
    'dhcp',
    {},
    { kind: 'ipxe', type: 2, file: `tftp://${S}/boot.ipxe`, siaddr: S, option43: null },
  ],
  [
    'iPXE gets an http script URL as is',
    ipxe,
    'dhcp',
    { pxe: { ipxeScript: 'http://10.77.0.2:8080/boot.ipxe' } },
    { kind: 'ipxe', type: 2, file: 'http://10.77.0.2:8080/boot.ipxe' },
  ],
  [
    'loop guard: iPXE without a script never gets the first-stage binary',
    ipxe,
    'dhcp',
    { pxe: { bios: 'undionly.kpxe' } },
    { reason: 'no-boot-file' },
  ],
  ['loop guard: a BIOS ROM never gets the iPXE script', bios, 'dhcp', { pxe: { ipxeScript: 'boot.ipxe' } }, { reason: 'no-boot-file' }],
  [
    'reply (op 2) is never answered',
    request({ mac: 'dc:a6:32:01:36:c2', op: 2, vendorClass: PXE_ARCH0, guid: pi4Guid }),
    'dhcp',
    {},
    { reason: 'not-a-request' },
  ],
  [
    'REQUEST on port 67 is never answered',
    request({ mac: 'dc:a6:32:01:36:c2', type: 3, vendorClass: PXE_ARCH0, guid: pi4Guid }),
    'dhcp',
    {},
    { reason: 'wrong-message-type' },
  ],
  ['DISCOVER on 4011 is not answered', pi4, 'pxe', {}, { reason: 'wrong-message-type' }],
  [
    'RELEASE is not answered',
    request({ mac: 'dc:a6:32:01:36:c2', type: 7, vendorClass: PXE_ARCH0 }),
    'dhcp',
    {},
    { reason: 'wrong-message-type' },
  ],
  ['non-PXE DHCP client is not answered', plainDhcp, 'dhcp', {}, { reason: 'not-pxe' }],
];

describe('decideProxyReply', () => {
  it.each(table)('%s', (_name, req, port, overrides, expected) => {
    const decision = decideProxyReply(req, { port, policy: policy(overrides) });
    if ('reason' in expected) {
      expect(decision).toMatchObject({ action: 'ignore', reason: expected.reason });
      return;
    }
    if (decision.action !== 'reply') throw new Error(`expected a reply, got ${decision.reason}`);
    const reply = decodeDhcpMessage(encodeDhcpMessage(decision.reply, { maxSize: decision.maxSize }));
    expect(decision.client.kind).toBe(expected.kind);
    expect(reply.options.get(53)?.[0]).toBe(expected.type);
    // Invariants of every proxy reply: no address, our identity, PXEClient, GUID echoed iff 17 bytes.
    expect(reply.op).toBe(2);
    expect(reply.yiaddr).toBe('0.0.0.0');
    expect(reply.xid).toBe(req.xid);
    expect(reply.chaddr).toEqual(req.chaddr);
    expect(hex(reply.options.get(54))).toBe('0a4d0002');
    expect(String.fromCharCode(...(reply.options.get(60) ?? []))).toBe('PXEClient');
    expect(hex(reply.options.get(97))).toBe(req.options.get(97)?.length === 17 ? hex(req.options.get(97)) : undefined);
    expect(reply.flags).toBe(port === 'dhcp' ? 0x8000 : req.flags);
    expect(reply.ciaddr).toBe(port === 'dhcp' ? '0.0.0.0' : req.ciaddr);
    if (expected.file !== undefined) expect(reply.file).toBe(expected.file);
    if (expected.siaddr !== undefined) expect(reply.siaddr).toBe(expected.siaddr);
    if (expected.sname !== undefined) expect(reply.sname).toBe(expected.sname);
    const option43 = reply.options.get(43);
    if (expected.option43 === null) expect(option43).toBeUndefined();
    else if (expected.option43 === 'pi')
      expect(decodePxeMenu(decodePxeVendorOptions(option43!).get(9)!)).toEqual([{ type: 0, text: 'Raspberry Pi Boot' }]);
    else if (expected.option43 === 'pi3') expect(option43?.length).toBe(0x23);
    else if (expected.option43 !== undefined) expect(hex(option43)).toBe(expected.option43);
    // The Pi menu goes to Pis only, boot files never to Pis.
    expect(offersRaspberryPiBoot(option43)).toBe(expected.kind === 'pi');
    if (expected.kind === 'pi') expect([reply.file, reply.siaddr]).toEqual(['', '0.0.0.0']);
    if (expected.option66) {
      expect(String.fromCharCode(...reply.options.get(66)!)).toBe(expected.option66);
      const keys = [...reply.options.keys()];
      expect(keys.indexOf(66)).toBeGreaterThan(keys.indexOf(43));
    } else expect(reply.options.has(66)).toBe(false);
    expect(decision.repeatAfterMs).toBe(expected.repeatAfterMs);
  });
});

describe('golden: our Pi reply equals dnsmasq 2.90 byte for byte', () => {
  const frames = readUdpFrames(fixturePath('dnsmasq-proxy-reply.pcap'));
  const [discover, offer, req, ack] = frames;
  const goldenPolicy = policy({ serverIp: '10.77.0.1', pi3RepeatDelayMs: 0 });

  it('DISCOVER on 67 → OFFER (frame 2), broadcast to 255.255.255.255:68', () => {
    const decision = decideProxyReply(decodeDhcpMessage(discover!.payload), { port: 'dhcp', policy: goldenPolicy });
    if (decision.action !== 'reply') throw new Error(decision.reason);
    expect(hex(encodeDhcpMessage(decision.reply, { maxSize: decision.maxSize }))).toBe(hex(offer!.payload));
    expect(replyDestination(decodeDhcpMessage(discover!.payload), 'dhcp', { address: discover!.srcIp, port: discover!.srcPort })).toEqual({
      address: offer!.dstIp,
      port: offer!.dstPort,
      broadcast: true,
    });
    expect(offer!.srcIp).toBe('10.77.0.1'); // IP source = option 54
  });

  it('REQUEST on 4011 → ACK (frame 4), unicast back to the source', () => {
    const decision = decideProxyReply(decodeDhcpMessage(req!.payload), { port: 'pxe', policy: goldenPolicy });
    if (decision.action !== 'reply') throw new Error(decision.reason);
    expect(hex(encodeDhcpMessage(decision.reply, { maxSize: decision.maxSize }))).toBe(hex(ack!.payload));
    expect(replyDestination(decodeDhcpMessage(req!.payload), 'pxe', { address: req!.srcIp, port: req!.srcPort })).toEqual({
      address: ack!.dstIp,
      port: ack!.dstPort,
      broadcast: false,
    });
  });

  it('the same Pi is repeated once for the Pi 3B ROM quirk when enabled', () => {
    const decision = decideProxyReply(decodeDhcpMessage(discover!.payload), { port: 'dhcp', policy: policy({ serverIp: '10.77.0.1' }) });
    expect(decision).toMatchObject({ action: 'reply', repeatAfterMs: 1200 });
  });
});

describe('replyDestination (RFC 2131 4.1)', () => {
  const src = { address: '0.0.0.0', port: 68 };
  it.each([
    [
      'broadcast when giaddr and ciaddr are 0',
      { giaddr: '0.0.0.0', ciaddr: '0.0.0.0' },
      'dhcp',
      src,
      { address: '255.255.255.255', port: 68, broadcast: true },
    ],
    [
      'relay: unicast to giaddr:67',
      { giaddr: '10.1.0.1', ciaddr: '0.0.0.0' },
      'dhcp',
      src,
      { address: '10.1.0.1', port: 67, broadcast: false },
    ],
    [
      'relay wins over ciaddr',
      { giaddr: '10.1.0.1', ciaddr: '10.1.0.50' },
      'dhcp',
      src,
      { address: '10.1.0.1', port: 67, broadcast: false },
    ],
    [
      'ciaddr: unicast to ciaddr:68',
      { giaddr: '0.0.0.0', ciaddr: '10.77.0.50' },
      'dhcp',
      src,
      { address: '10.77.0.50', port: 68, broadcast: false },
    ],
    [
      '4011: back to the source port (edk2 uses 4011)',
      { giaddr: '0.0.0.0', ciaddr: '10.77.0.148' },
      'pxe',
      { address: '10.77.0.148', port: 4011 },
      { address: '10.77.0.148', port: 4011, broadcast: false },
    ],
    [
      '4011 from an address-less client: broadcast to its port',
      { giaddr: '0.0.0.0', ciaddr: '0.0.0.0' },
      'pxe',
      { address: '0.0.0.0', port: 68 },
      { address: '255.255.255.255', port: 68, broadcast: true },
    ],
  ] as const)('%s', (_name, req, port, source, expected) => {
    expect(replyDestination(req, port, source)).toEqual(expected);
  });
});

describe('maxReplySize', () => {
  it.each([
    [undefined, 548],
    [576, 548],
    [1500, 1472],
    [9000, 1472],
    [300, 548],
  ])('option 57 = %s → %d', (size, expected) => {
    expect(maxReplySize(request({ mac: 'dc:a6:32:00:00:01', ...(size === undefined ? {} : { maxSize: size }) }))).toBe(expected);
  });
});

describe('validateProxyPolicy names the offending key', () => {
  it.each([
    [{ serverIp: '0.0.0.0' }, 'serverIp'],
    [{ serverIp: 'server' }, 'serverIp'],
    [{ answer: 'everyone' as never }, 'dhcpAnswer'],
    [{ pi3RepeatDelayMs: -1 }, 'pi3RepeatDelayMs'],
    [{ pi3RepeatDelayMs: Number.NaN }, 'pi3RepeatDelayMs'],
    [{ option66: 'tftp.example' }, 'option66'],
    [{ pxe: { bios: '' } }, 'pxe.bios'],
    [{ pxe: { uefiX64: 'has space.efi' } }, 'pxe.uefiX64'],
    [{ pxe: { ipxeScript: `http://x/${'a'.repeat(130)}` } }, 'pxe.ipxeScript'],
  ] as Array<[Partial<ProxyPolicy>, string]>)('%j → %s', (overrides, key) => {
    expect(() => validateProxyPolicy(policy(overrides))).toThrow(expect.objectContaining({ code: 'DHCP_CONFIG_ERROR', key }));
  });

  it('accepts a complete policy', () => {
    expect(validateProxyPolicy(policy({ option66: '10.77.0.2' }))).toBeDefined();
  });
});
