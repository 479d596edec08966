/**
 * Scripted PXE / Raspberry Pi DHCP client for lab namespaces (no raw sockets: the address-less
 * namespace sends from 0.0.0.0:68 and hears broadcast replies, docs/lab.md section 1).
 *   discover: broadcast a DISCOVER shaped like the given firmware, print every reply as a JSON
 *             line; with `requestLease` also REQUEST the address offer and wait for its ACK.
 *   request4011: unicast a PXE REQUEST (ciaddr set) to server:4011 from `sourcePort`.
 *   relay: act as a DHCP relay agent at `sourceAddress`: forward the DISCOVER (giaddr set, hops 1)
 *          from port 67 to server:67 and listen on 67 for the relayed reply.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { encodePiGuid } from '@iot-tofu/rpi';
import {
  asciiBytes,
  decodeDhcpMessage,
  encodeDhcpMessage,
  ipv4FromBytes,
  ipv4ToBytes,
  messageType,
  offersRaspberryPiBoot,
  optionText,
  type DhcpMessage,
} from '@iot-tofu/dhcp';
import { readUdpFrames } from '../../packages/dhcp/test/pcap.js';
import { fixturePath } from '../../packages/dhcp/test/fixtures.js';

export type Profile = 'pi3b' | 'pi4' | 'pi5' | 'bios' | 'uefi-x64';

export interface ClientConfig {
  mode: 'discover' | 'request4011' | 'relay';
  profile: Profile;
  mac: string;
  serial?: string;
  xid?: number;
  listenMs?: number;
  /** discover: also take the address offer (REQUEST → ACK) before exiting. */
  requestLease?: boolean;
  server?: string;
  ciaddr?: string;
  sourcePort?: number;
  sourceAddress?: string;
}

export interface ReplySummary {
  from: string;
  type?: string;
  xid: number;
  flags: number;
  yiaddr: string;
  siaddr: string;
  ciaddr: string;
  sname: string;
  file: string;
  serverId?: string;
  vendorClass?: string;
  option43?: string;
  option97?: string;
  piBoot: boolean;
  bytes: number;
  hex: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ClientConfig;
const print = (event: string, payload: object = {}) => process.stdout.write(`${JSON.stringify({ event, ...payload })}\n`);

const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : undefined);
const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
const PI_REQUEST_LIST_3B = [43, 60, 67, 128, 129, 130, 131, 132, 133, 134, 135, 66];
const PI_REQUEST_LIST_5 = [1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135];

function discoverOptions(profile: Profile, type: number, extra: Array<[number, Uint8Array]> = []): Array<[number, Uint8Array]> {
  const serial = config.serial ?? '1f2e3d4c';
  switch (profile) {
    case 'pi4':
    case 'pi5': {
      const guid = encodePiGuid(
        { kind: 'fourcc', model: profile, boardRevision: profile === 'pi4' ? 0xc03111 : 0xd04170, macLow: '', serial },
        config.mac,
      );
      const list = profile === 'pi4' ? [...PI_REQUEST_LIST_3B, 1, 3] : PI_REQUEST_LIST_5;
      return [
        [53, Uint8Array.of(type)],
        [55, Uint8Array.from(list)],
        [93, u16(0)],
        [94, Uint8Array.of(1, 2, 1)],
        [97, guid],
        [60, asciiBytes('PXEClient:Arch:00000:UNDI:002001')],
        ...extra,
      ];
    }
    case 'pi3b':
      return [
        [53, Uint8Array.of(type)],
        [55, Uint8Array.from(PI_REQUEST_LIST_3B)],
        [93, u16(0)],
        [94, Uint8Array.of(1, 2, 1)],
        [97, encodePiGuid({ kind: 'pi3-rom' })],
        [60, asciiBytes('PXEClient:Arch:00000:UNDI:002001')],
        ...extra,
      ];
    case 'bios':
      return [
        [53, Uint8Array.of(type)],
        [57, u16(1260)],
        [93, u16(0)],
        [94, Uint8Array.of(1, 2, 1)],
        [97, new Uint8Array(17)],
        [60, asciiBytes('PXEClient:Arch:00000:UNDI:002001')],
        [55, Uint8Array.of(1, 3, 43, 60, 66, 67, 128, 129, 130)],
        ...extra,
      ];
    case 'uefi-x64':
      return [
        [53, Uint8Array.of(type)],
        [57, u16(1472)],
        [55, Uint8Array.of(1, 3, 43, 60, 66, 67)],
        [97, new Uint8Array(17).fill(0x31)],
        [94, Uint8Array.of(1, 3, 0)],
        [93, u16(7)],
        [60, asciiBytes('PXEClient:Arch:00007:UNDI:003000')],
        ...extra,
      ];
  }
}

function buildDiscover(xid: number, relay?: string): Uint8Array {
  if (relay) {
    return encodeDhcpMessage({ op: 1, xid, hops: 1, giaddr: relay, chaddr: config.mac, options: discoverOptions(config.profile, 1) });
  }
  if (config.profile === 'pi3b') {
    // The byte-exact Pi 3B-shaped DISCOVER of the reference capture, with this client's MAC.
    const golden = readUdpFrames(fixturePath('dnsmasq-proxy-reply.pcap'))[0]!.payload.slice();
    golden.set(
      Uint8Array.from(config.mac.split(':'), (p) => parseInt(p, 16)),
      28,
    );
    return golden;
  }
  return encodeDhcpMessage({ op: 1, xid, chaddr: config.mac, options: discoverOptions(config.profile, 1) });
}

function summarize(message: DhcpMessage, rinfo: RemoteInfo, size: number, raw: string): ReplySummary {
  const serverId = message.options.get(54);
  const summary: ReplySummary = {
    from: `${rinfo.address}:${rinfo.port}`,
    xid: message.xid,
    flags: message.flags,
    yiaddr: message.yiaddr,
    siaddr: message.siaddr,
    ciaddr: message.ciaddr,
    sname: message.sname,
    file: message.file,
    piBoot: offersRaspberryPiBoot(message.options.get(43)),
    bytes: size,
    hex: raw,
  };
  const type = messageType(message);
  if (type) summary.type = type;
  if (serverId?.length === 4) summary.serverId = ipv4FromBytes(serverId);
  const vendorClass = optionText(message, 60);
  if (vendorClass !== undefined) summary.vendorClass = vendorClass;
  const option43 = hex(message.options.get(43));
  if (option43) summary.option43 = option43;
  const option97 = hex(message.options.get(97));
  if (option97) summary.option97 = option97;
  return summary;
}

const socket = createSocket({ type: 'udp4', reuseAddr: true });
const xid = config.xid ?? (config.profile === 'pi3b' ? 0x26f30339 : Math.floor(Math.random() * 0xffffffff));
const myMac = Uint8Array.from(config.mac.split(':'), (p) => parseInt(p, 16));
let leaseOffer: DhcpMessage | undefined;
let done = false;

function finish(code = 0): void {
  if (done) return;
  done = true;
  print('done');
  socket.close(() => process.exit(code));
}

socket.on('message', (bytes, rinfo) => {
  let message: DhcpMessage;
  try {
    message = decodeDhcpMessage(bytes);
  } catch {
    return;
  }
  if (message.op !== 2 || message.xid !== xid || !message.chaddr.subarray(0, 6).every((b, i) => b === myMac[i])) return;
  print('reply', summarize(message, rinfo, bytes.length, bytes.toString('hex')));
  const type = messageType(message);
  if (config.requestLease && type === 'offer' && message.yiaddr !== '0.0.0.0' && !leaseOffer) {
    leaseOffer = message;
    const serverId = message.options.get(54) ?? new Uint8Array(4);
    const request = encodeDhcpMessage({
      op: 1,
      xid,
      chaddr: config.mac,
      options: discoverOptions(config.profile, 3, [
        [50, ipv4ToBytes(message.yiaddr)],
        [54, serverId],
      ]),
    });
    socket.send(request, 67, '255.255.255.255');
  }
  if (config.requestLease && type === 'ack' && message.yiaddr !== '0.0.0.0')
    print('lease', { address: message.yiaddr, server: rinfo.address });
});

if (config.mode === 'discover') {
  socket.bind(68, '0.0.0.0', () => {
    socket.setBroadcast(true);
    socket.send(buildDiscover(xid), 67, '255.255.255.255', (error) => {
      if (error) {
        print('error', { message: error.message });
        finish(1);
      } else print('sent', { xid });
    });
  });
} else if (config.mode === 'relay') {
  const relay = config.sourceAddress ?? '0.0.0.0';
  socket.bind(67, relay, () => {
    socket.send(buildDiscover(xid, relay), 67, config.server ?? '0.0.0.0', (error) => {
      if (error) {
        print('error', { message: error.message });
        finish(1);
      } else print('sent', { xid });
    });
  });
} else {
  socket.bind(config.sourcePort ?? 68, config.sourceAddress ?? config.ciaddr ?? '0.0.0.0', () => {
    const request = encodeDhcpMessage({
      op: 1,
      xid,
      chaddr: config.mac,
      ciaddr: config.ciaddr ?? '0.0.0.0',
      options: discoverOptions(config.profile, 3),
    });
    socket.send(request, 4011, config.server ?? '0.0.0.0', (error) => {
      if (error) {
        print('error', { message: error.message });
        finish(1);
      } else print('sent', { xid });
    });
  });
}
setTimeout(() => finish(0), config.listenMs ?? 1500);
