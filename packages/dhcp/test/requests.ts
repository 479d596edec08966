import { encodePiGuid } from '@iot-tofu/rpi';
import { asciiBytes, decodeDhcpMessage, encodeDhcpMessage, type DhcpMessage } from '../src/index.js';

export interface RequestShape {
  mac: string;
  xid?: number;
  op?: number;
  type?: number;
  vendorClass?: string;
  arch?: number;
  guid?: Uint8Array;
  userClass?: string;
  ciaddr?: string;
  giaddr?: string;
  maxSize?: number;
  etherboot?: boolean;
}

/** Builds a client request the way firmware would send it, then decodes it like the server. */
export function request(shape: RequestShape): DhcpMessage {
  const options: Array<[number, Uint8Array]> = [[53, Uint8Array.of(shape.type ?? 1)]];
  if (shape.maxSize !== undefined) options.push([57, Uint8Array.of(shape.maxSize >> 8, shape.maxSize & 0xff)]);
  if (shape.arch !== undefined) options.push([93, Uint8Array.of(shape.arch >> 8, shape.arch & 0xff)]);
  options.push([94, Uint8Array.of(1, 2, 1)]);
  if (shape.guid) options.push([97, shape.guid]);
  if (shape.vendorClass !== undefined) options.push([60, asciiBytes(shape.vendorClass)]);
  if (shape.userClass !== undefined) options.push([77, asciiBytes(shape.userClass)]);
  if (shape.etherboot) options.push([175, Uint8Array.of(0xb1, 1, 1)]);
  return decodeDhcpMessage(
    encodeDhcpMessage({
      op: shape.op ?? 1,
      xid: shape.xid ?? 0x12345678,
      chaddr: shape.mac,
      ciaddr: shape.ciaddr ?? '0.0.0.0',
      giaddr: shape.giaddr ?? '0.0.0.0',
      options,
    }),
  );
}

export const PXE_ARCH0 = 'PXEClient:Arch:00000:UNDI:002001';
export const pi4Guid = encodePiGuid(
  { kind: 'fourcc', model: 'pi4', boardRevision: 0xc03111, macLow: '00:00:00:00', serial: 'ab5a4158' },
  'dc:a6:32:01:36:c2',
);
export const pi5Guid = encodePiGuid(
  { kind: 'fourcc', model: 'pi5', boardRevision: 0xd04170, macLow: '00:00:00:00', serial: '1f2e3d4c' },
  '2c:cf:67:00:00:01',
);
export const pi3RomGuid = encodePiGuid({ kind: 'pi3-rom' });
export const pi3PlusGuid = encodePiGuid({ kind: 'serial-x4', serial: '64247d00' });
