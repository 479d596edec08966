import { readFileSync } from 'node:fs';

/** One UDP/IPv4 datagram out of a capture file. */
export interface UdpFrame {
  index: number;
  timeSeconds: number;
  ethDst?: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/**
 * Tiny libpcap reader (classic format, Ethernet, Linux cooked v1/v2 or raw IP link types) that
 * returns only the IPv4/UDP frames; enough to compare our packets with reference captures.
 */
export function readUdpFrames(path: string): UdpFrame[] {
  const file = readFileSync(path);
  const bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!little && view.getUint32(0, false) !== 0xa1b2c3d4 && view.getUint32(0, false) !== 0xa1b23c4d) {
    throw new Error(`${path}: not a classic pcap file`);
  }
  const nanos = magic === 0xa1b23c4d || view.getUint32(0, false) === 0xa1b23c4d;
  const linkType = view.getUint32(20, little);
  const frames: UdpFrame[] = [];
  let offset = 24;
  let index = 0;
  while (offset + 16 <= bytes.length) {
    const seconds = view.getUint32(offset, little);
    const fraction = view.getUint32(offset + 4, little);
    const captured = view.getUint32(offset + 8, little);
    const data = bytes.subarray(offset + 16, offset + 16 + captured);
    offset += 16 + captured;
    index += 1;
    const frame = parseLink(linkType, data);
    if (frame) frames.push({ index, timeSeconds: seconds + fraction / (nanos ? 1e9 : 1e6), ...frame });
  }
  return frames;
}

function parseLink(linkType: number, data: Uint8Array): Omit<UdpFrame, 'index' | 'timeSeconds'> | undefined {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (linkType === 1) {
    if (data.length < 14 || view.getUint16(12) !== 0x0800) return undefined;
    const ethDst = Array.from(data.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
    const ip = parseIpv4Udp(data.subarray(14));
    return ip && { ethDst, ...ip };
  }
  if (linkType === 113) return data.length >= 16 && view.getUint16(14) === 0x0800 ? parseIpv4Udp(data.subarray(16)) : undefined;
  if (linkType === 276) return data.length >= 20 && view.getUint16(0) === 0x0800 ? parseIpv4Udp(data.subarray(20)) : undefined;
  if (linkType === 101 || linkType === 228) return parseIpv4Udp(data);
  return undefined;
}

function parseIpv4Udp(ip: Uint8Array): Omit<UdpFrame, 'index' | 'timeSeconds' | 'ethDst'> | undefined {
  if (ip.length < 20 || (ip[0] as number) >> 4 !== 4 || ip[9] !== 17) return undefined;
  const headerLength = ((ip[0] as number) & 0x0f) * 4;
  const udp = ip.subarray(headerLength);
  if (udp.length < 8) return undefined;
  const view = new DataView(udp.buffer, udp.byteOffset, udp.byteLength);
  const udpLength = view.getUint16(4);
  return {
    srcIp: ip.subarray(12, 16).join('.'),
    dstIp: ip.subarray(16, 20).join('.'),
    srcPort: view.getUint16(0),
    dstPort: view.getUint16(2),
    payload: udp.slice(8, Math.min(udpLength, udp.length)),
  };
}
