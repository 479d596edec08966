import { describe, expect, it } from 'vitest';
import { PI3_ROM_XID, classifyClient, type ClientInfo } from '../src/index.js';
import { PXE_ARCH0, pi3PlusGuid, pi3RomGuid, pi4Guid, pi5Guid, request, type RequestShape } from './requests.js';

const registeredMacs = new Set(['52:54:00:aa:bb:cc']);
const registeredSerials = new Set(['0badcafe']);
const isRegistered = ({ mac, serial }: { mac: string; serial?: string }) =>
  registeredMacs.has(mac) || (serial !== undefined && registeredSerials.has(serial));

const cases: Array<[string, RequestShape, Partial<ClientInfo>]> = [
  [
    'Pi 4 GUID RPi4 on a Pi OUI',
    { mac: 'dc:a6:32:01:36:c2', vendorClass: PXE_ARCH0, arch: 0, guid: pi4Guid },
    { kind: 'pi', piEvidence: 'guid', model: 'pi4', serial: 'ab5a4158', guidKind: 'fourcc', pi3RomLike: false },
  ],
  [
    'Pi 5 GUID RPi5 with an overridden MAC',
    { mac: '02:00:00:00:00:05', vendorClass: PXE_ARCH0, arch: 0, guid: pi5Guid },
    { kind: 'pi', piEvidence: 'guid', model: 'pi5', serial: '1f2e3d4c' },
  ],
  [
    'Pi 3B ROM (constant GUID, constant xid)',
    { mac: 'b8:27:eb:64:24:7d', xid: PI3_ROM_XID, vendorClass: PXE_ARCH0, arch: 0, guid: pi3RomGuid },
    { kind: 'pi', piEvidence: 'oui', model: 'pi3b', guidKind: 'pi3-rom', pi3RomLike: true },
  ],
  [
    'Pi 3 bootcode.bin (constant xid, no GUID)',
    { mac: 'b8:27:eb:00:00:01', xid: PI3_ROM_XID, vendorClass: PXE_ARCH0, arch: 0 },
    { kind: 'pi', piEvidence: 'oui', guidKind: 'none', pi3RomLike: true },
  ],
  [
    'Pi 3B+ (serial ×4 GUID)',
    { mac: 'b8:27:eb:64:24:7d', vendorClass: PXE_ARCH0, arch: 0, guid: pi3PlusGuid },
    { kind: 'pi', piEvidence: 'oui', model: 'pi3b+', serial: '64247d00', guidKind: 'serial-x4', pi3RomLike: false },
  ],
  ['each Raspberry Pi OUI', { mac: 'd8:3a:dd:00:00:01', vendorClass: PXE_ARCH0, arch: 0 }, { kind: 'pi', piEvidence: 'oui' }],
  [
    'allow-listed MAC without any Pi hint',
    { mac: '52:54:00:aa:bb:cc', vendorClass: PXE_ARCH0, arch: 0 },
    { kind: 'pi', piEvidence: 'allow-list' },
  ],
  [
    'allow-listed serial beats the GUID evidence',
    { mac: '02:00:00:00:00:09', vendorClass: PXE_ARCH0, arch: 0, guid: pi4GuidFor('0badcafe') },
    { kind: 'pi', piEvidence: 'allow-list', serial: '0badcafe' },
  ],
  [
    'x86 BIOS PXE ROM: arch 0 alone is not a Pi',
    { mac: '52:54:00:12:34:56', vendorClass: PXE_ARCH0, arch: 0 },
    { kind: 'bios', piEvidence: undefined },
  ],
  ['arch 0 from option 60 only', { mac: '52:54:00:12:34:57', vendorClass: PXE_ARCH0 }, { kind: 'bios', arch: 0 }],
  [
    'Pi 3 xid on a non-Pi MAC is only a weak hint',
    { mac: '52:54:00:12:34:58', xid: PI3_ROM_XID, vendorClass: PXE_ARCH0, arch: 0 },
    { kind: 'bios', pi3RomLike: false },
  ],
  [
    'UEFI x64 (arch 7)',
    { mac: '52:54:00:77:00:31', vendorClass: 'PXEClient:Arch:00007:UNDI:003000', arch: 7 },
    { kind: 'uefi-x64', arch: 7 },
  ],
  ['UEFI x64 (arch 9)', { mac: '52:54:00:77:00:32', vendorClass: 'PXEClient:Arch:00009:UNDI:003000', arch: 9 }, { kind: 'uefi-x64' }],
  [
    'UEFI arm64 on a Pi OUI is UEFI, not the Pi bootloader',
    { mac: 'dc:a6:32:00:00:0b', vendorClass: 'PXEClient:Arch:00011:UNDI:003000', arch: 11 },
    { kind: 'uefi-arm64' },
  ],
  ['UEFI ia32', { mac: '52:54:00:77:00:33', vendorClass: 'PXEClient:Arch:00006:UNDI:003000', arch: 6 }, { kind: 'uefi-ia32' }],
  [
    'UEFI HTTP by vendor class',
    { mac: '52:54:00:77:00:34', vendorClass: 'HTTPClient:Arch:00016:UNDI:003001', arch: 16 },
    { kind: 'uefi-http' },
  ],
  ['UEFI HTTP by arch', { mac: '52:54:00:77:00:35', vendorClass: 'PXEClient:Arch:00019:UNDI:003001', arch: 19 }, { kind: 'uefi-http' }],
  ['iPXE by user class', { mac: '52:54:00:77:00:11', vendorClass: PXE_ARCH0, arch: 0, userClass: 'iPXE' }, { kind: 'ipxe' }],
  ['iPXE by option 175 on a Pi OUI', { mac: 'dc:a6:32:00:00:0c', vendorClass: PXE_ARCH0, arch: 0, etherboot: true }, { kind: 'ipxe' }],
  ['unknown architecture', { mac: '52:54:00:77:00:36', vendorClass: 'PXEClient:Arch:00002:UNDI:002001', arch: 2 }, { kind: 'unknown-pxe' }],
  ['plain DHCP client on a Pi OUI', { mac: 'dc:a6:32:00:00:0d', vendorClass: 'udhcp 1.35.0' }, { kind: 'not-pxe' }],
  ['no vendor class at all', { mac: 'dc:a6:32:00:00:0e' }, { kind: 'not-pxe' }],
];

function pi4GuidFor(serial: string): Uint8Array {
  const guid = pi4Guid.slice();
  new DataView(guid.buffer, 13).setUint32(0, parseInt(serial, 16), true);
  return guid;
}

describe('classifyClient', () => {
  it.each(cases)('%s', (_name, shape, expected) => {
    const info = classifyClient(request(shape), { isRegistered });
    expect(info).toBeDefined();
    for (const [key, value] of Object.entries(expected)) expect(info?.[key as keyof ClientInfo], key).toEqual(value);
  });

  it('returns undefined for a non-Ethernet chaddr', () => {
    const message = request({ mac: 'dc:a6:32:00:00:01', vendorClass: PXE_ARCH0 });
    message.htype = 6;
    expect(classifyClient(message)).toBeUndefined();
  });
});
