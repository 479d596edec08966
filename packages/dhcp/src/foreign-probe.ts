import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { IotTofuError } from '@iot-tofu/errors';
import { clientMac, decodeDhcpMessage, encodeDhcpMessage, ipv4FromBytes, messageType, type DhcpMessage } from './codec.js';
import { BROADCAST_FLAG, DhcpMessageType, DhcpOption } from './options.js';
import type { DhcpUdpSocket } from './server.js';

/** A DHCP server other than us that answered the start-up probe. */
export interface ForeignDhcpServer {
  /** IP source of its reply. */
  from: string;
  /** Its option 54. */
  serverId?: string;
  /** yiaddr of its OFFER (0.0.0.0 for a proxyDHCP). */
  offered: string;
  type?: string;
}

/** Full mode found another DHCP server on the segment: two servers would hand out addresses twice. */
export class ForeignDhcpServerError extends IotTofuError {
  readonly servers: ForeignDhcpServer[];
  constructor(servers: ForeignDhcpServer[]) {
    super('DHCP_FOREIGN_SERVER', describeForeignServers(servers));
    this.servers = servers;
  }
}

/** One line, for the log and the error: what answered, from where, what it offered. */
export function describeForeignServers(servers: readonly ForeignDhcpServer[]): string {
  const seen = servers
    .map((s) => `${s.from}${s.serverId && s.serverId !== s.from ? ` (server id ${s.serverId})` : ''} ${s.type ?? 'reply'}ed ${s.offered}`)
    .join('; ');
  return `another DHCP server answers on this segment: ${seen}; refusing --dhcp-mode full (stop it, or use --dhcp-mode proxy beside it)`;
}

export interface ForeignProbeOptions {
  /** Our address: the probe leaves from it (so from the boot LAN's interface). */
  serverIp: string;
  /** Listen this long for answers; default 4000 ms (a dnsmasq that ping-checks the address offers about 3 s after the DISCOVER). */
  timeoutMs?: number;
  /** chaddr of the probe; default a random locally administered MAC (nobody's lease). */
  mac?: string;
  serverPort?: number;
  clientPort?: number;
  broadcastAddress?: string;
  socketFactory?: (options: { reuseAddr: boolean }) => DhcpUdpSocket;
}

/**
 * Broadcasts a plain DISCOVER (no PXE options, so a proxyDHCP stays silent and only address
 * servers answer) twice and collects every reply to it. Replies arrive as broadcast (flag set)
 * on 0.0.0.0:68 or as unicast on serverIp:68. Resolves with the servers that answered.
 */
export async function probeForeignDhcpServers(options: ForeignProbeOptions): Promise<ForeignDhcpServer[]> {
  const timeoutMs = options.timeoutMs ?? 4000;
  const serverPort = options.serverPort ?? 67;
  const clientPort = options.clientPort ?? 68;
  const factory =
    options.socketFactory ??
    ((o: { reuseAddr: boolean }) => createSocket({ type: 'udp4', reuseAddr: o.reuseAddr }) as unknown as DhcpUdpSocket);
  const mac = options.mac ?? randomLocalMac();
  const xid = randomBytes(4).readUInt32BE(0);
  const found = new Map<string, ForeignDhcpServer>();
  const onMessage = (bytes: Buffer, rinfo: RemoteInfo) => {
    let message: DhcpMessage;
    try {
      message = decodeDhcpMessage(bytes);
    } catch {
      return;
    }
    if (message.op !== 2 || message.xid !== xid || clientMac(message) !== mac) return;
    const id = message.options.get(DhcpOption.ServerId);
    const serverId = id?.length === 4 ? ipv4FromBytes(id) : undefined;
    if (rinfo.address === options.serverIp || serverId === options.serverIp) return;
    const entry: ForeignDhcpServer = { from: rinfo.address, offered: message.yiaddr };
    if (serverId) entry.serverId = serverId;
    const type = messageType(message);
    if (type) entry.type = type;
    found.set(`${rinfo.address}/${serverId ?? ''}`, entry);
  };

  const sockets: DhcpUdpSocket[] = [];
  const bind = (socket: DhcpUdpSocket, address: string) =>
    new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(clientPort, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  try {
    const listen = factory({ reuseAddr: true });
    sockets.push(listen);
    listen.on('error', () => undefined);
    await bind(listen, '0.0.0.0');
    listen.on('message', onMessage);
    const send = factory({ reuseAddr: true });
    sockets.push(send);
    send.on('error', () => undefined);
    await bind(send, options.serverIp);
    send.setBroadcast(true);
    send.on('message', onMessage);
    const discover = encodeDhcpMessage({
      op: 1,
      xid,
      chaddr: mac,
      flags: BROADCAST_FLAG,
      options: [
        [DhcpOption.MessageType, Uint8Array.of(DhcpMessageType.Discover)],
        [DhcpOption.ParameterRequestList, Uint8Array.of(DhcpOption.SubnetMask, DhcpOption.Router)],
      ],
    });
    const destination = options.broadcastAddress ?? '255.255.255.255';
    const sendOnce = () => new Promise<void>((resolve) => send.send(discover, serverPort, destination, () => resolve()));
    await sendOnce();
    await delay(Math.min(500, timeoutMs / 2));
    await sendOnce();
    await delay(timeoutMs - Math.min(500, timeoutMs / 2));
  } finally {
    await Promise.all(
      sockets.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve();
            }
          }),
      ),
    );
  }
  return [...found.values()];
}

function randomLocalMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = ((bytes[0] as number) & 0xfc) | 0x02; // locally administered, unicast
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
