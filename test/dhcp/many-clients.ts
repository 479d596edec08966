/**
 * N simulated DHCP clients at once from one address-less lab namespace (distinct MACs, sent from
 * 0.0.0.0:68, replies heard as broadcasts): each DISCOVERs, REQUESTs the address offered, and is
 * done at its ACK; unanswered clients resend every `retryMs`. Bounded by `deadlineMs`. Prints one
 * JSON line: {"event":"result", acked: {mac: address}, naks, offers, missing: [macs], ms}.
 *   node … test/dhcp/many-clients.ts '{"count":200,"deadlineMs":30000}'
 */
import { createSocket } from 'node:dgram';
import { decodeDhcpMessage, encodeDhcpMessage, ipv4ToBytes, messageType, type DhcpMessage } from '@iot-tofu/dhcp';

export interface ManyClientsConfig {
  count: number;
  deadlineMs: number;
  retryMs?: number;
  /** First MAC byte pair after 02:; distinct per run so leases do not collide with earlier runs. */
  seed?: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ManyClientsConfig;
const count = Math.min(Math.max(config.count, 1), 1000);
const seed = (config.seed ?? 0x77) & 0xff;
const macOf = (i: number) =>
  `02:${seed.toString(16).padStart(2, '0')}:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
const xidOf = (i: number) => ((seed << 24) | (0x5a << 16) | i) >>> 0;

interface Client {
  mac: string;
  xid: number;
  offered?: { address: string; server: Uint8Array };
  acked?: string;
}
const clients: Client[] = Array.from({ length: count }, (_, i) => ({ mac: macOf(i), xid: xidOf(i) }));
const byXid = new Map(clients.map((c) => [c.xid, c]));
let offers = 0;
let naks = 0;
const started = Date.now();

const socket = createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: 4 << 20 });
const send = (bytes: Uint8Array) => new Promise<void>((resolve) => socket.send(bytes, 67, '255.255.255.255', () => resolve()));

function discover(c: Client): Uint8Array {
  return encodeDhcpMessage({
    op: 1,
    xid: c.xid,
    chaddr: c.mac,
    options: [
      [53, Uint8Array.of(1)],
      [55, Uint8Array.of(1, 3, 6, 51)],
    ],
  });
}
function request(c: Client): Uint8Array {
  return encodeDhcpMessage({
    op: 1,
    xid: c.xid,
    chaddr: c.mac,
    options: [
      [53, Uint8Array.of(3)],
      [50, ipv4ToBytes(c.offered!.address)],
      [54, c.offered!.server],
    ],
  });
}

socket.on('message', (bytes) => {
  let m: DhcpMessage;
  try {
    m = decodeDhcpMessage(bytes);
  } catch {
    return;
  }
  const c = byXid.get(m.xid);
  if (!c || m.op !== 2 || c.acked) return;
  const type = messageType(m);
  if (type === 'offer' && m.yiaddr !== '0.0.0.0' && !c.offered) {
    offers += 1;
    c.offered = { address: m.yiaddr, server: m.options.get(54) ?? new Uint8Array(4) };
    void send(request(c));
  } else if (type === 'ack' && c.offered && m.yiaddr === c.offered.address) {
    c.acked = m.yiaddr;
  } else if (type === 'nak') {
    naks += 1;
    delete c.offered; // start over
  }
});

await new Promise<void>((resolve) => socket.bind(68, '0.0.0.0', resolve));
socket.setBroadcast(true);
const retryMs = config.retryMs ?? 1000;
const deadline = started + Math.min(config.deadlineMs, 120_000);
while (Date.now() < deadline && clients.some((c) => !c.acked)) {
  for (const c of clients) {
    if (c.acked) continue;
    await send(c.offered ? request(c) : discover(c));
  }
  const until = Math.min(Date.now() + retryMs, deadline);
  while (Date.now() < until && clients.some((c) => !c.acked)) await new Promise((r) => setTimeout(r, 20));
}
const acked = Object.fromEntries(clients.filter((c) => c.acked).map((c) => [c.mac, c.acked!]));
process.stdout.write(
  `${JSON.stringify({ event: 'result', acked, offers, naks, missing: clients.filter((c) => !c.acked).map((c) => c.mac), ms: Date.now() - started })}\n`,
);
socket.close(() => process.exit(0));
