import { decodeDhcpMessage, encodeDhcpMessage, ipv4ToBytes } from '@iot-tofu/dhcp';
import { fixturePath } from '../../packages/dhcp/test/fixtures.js';
import { readUdpFrames } from '../../packages/dhcp/test/pcap.js';

/** dnsmasq's captured Pi offer (frame 2) re-addressed to another server IP, as hex. */
export function goldenPiOfferHex(serverIp: string): string {
  const offer = decodeDhcpMessage(readUdpFrames(fixturePath('dnsmasq-proxy-reply.pcap'))[1]!.payload);
  offer.options.set(54, ipv4ToBytes(serverIp));
  return Buffer.from(encodeDhcpMessage(offer)).toString('hex');
}
