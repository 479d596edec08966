/**
 * Which DATA send form is cheapest in Node's dgram, on loopback (127.0.0.1 only, bounded count):
 *   list      [shared 4-byte header, view of the cached file]   (what the server does)
 *   prebuilt  one contiguous packet, headers interleaved in a cached copy of the file
 *   copy      a fresh Buffer per block (header + copy of the payload)
 * each on an unconnected socket (address per send) and a connected one. Prints CPU µs per packet
 * (process.cpuUsage, user + system; the receiving sink is in the same process and counted alike).
 *   node --conditions=@iot-tofu/source --import tsx bench/tftp/send-forms.ts [PACKETS]
 */
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';

const PACKETS = Math.min(Number(process.argv[2] ?? 200_000), 2_000_000);
const BLKSIZE = 1468;
const BLOCKS = 2048;
const file = Buffer.alloc(BLOCKS * BLKSIZE, 7);
const header = Buffer.from([0, 3, 0, 1]);
const prebuilt = Buffer.alloc(BLOCKS * (BLKSIZE + 4));
for (let b = 0; b < BLOCKS; b++) {
  prebuilt.writeUInt16BE(3, b * (BLKSIZE + 4));
  prebuilt.writeUInt16BE(b + 1, b * (BLKSIZE + 4) + 2);
  file.copy(prebuilt, b * (BLKSIZE + 4) + 4, b * BLKSIZE, (b + 1) * BLKSIZE);
}

const bound = (socket: Socket) => new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
const sink = createSocket('udp4');
await bound(sink);
let received = 0;
sink.on('message', () => received++);
const sinkPort = sink.address().port;

type Form = 'list' | 'prebuilt' | 'copy';
async function measure(form: Form, connected: boolean): Promise<number> {
  const socket = createSocket('udp4');
  await bound(socket);
  if (connected) await new Promise<void>((resolve) => socket.connect(sinkPort, '127.0.0.1', () => resolve()));
  const before = process.cpuUsage();
  // Bursts of 64, then yield so the sink drains (the kernel drops what overflows its buffer).
  for (let sent = 0; sent < PACKETS; ) {
    for (let i = 0; i < 64 && sent < PACKETS; i++, sent++) {
      const b = sent % BLOCKS;
      let packet: Uint8Array | Uint8Array[];
      if (form === 'list') packet = [header, file.subarray(b * BLKSIZE, (b + 1) * BLKSIZE)];
      else if (form === 'prebuilt') packet = prebuilt.subarray(b * (BLKSIZE + 4), (b + 1) * (BLKSIZE + 4));
      else {
        const fresh = Buffer.allocUnsafe(BLKSIZE + 4);
        header.copy(fresh, 0);
        file.copy(fresh, 4, b * BLKSIZE, (b + 1) * BLKSIZE);
        packet = fresh;
      }
      if (connected) socket.send(packet);
      else socket.send(packet, sinkPort, '127.0.0.1');
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const used = process.cpuUsage(before);
  socket.close();
  return (used.user + used.system) / PACKETS;
}

const results: string[] = [];
for (let round = 0; round < 2; round++) {
  for (const connected of [false, true]) {
    for (const form of ['list', 'prebuilt', 'copy'] as const) {
      const us = await measure(form, connected);
      if (round === 1) results.push(`${form.padEnd(9)} ${connected ? 'connected  ' : 'unconnected'} ${us.toFixed(2)} µs/packet`);
    }
  }
}
sink.close();
console.log(`${PACKETS} DATA packets of ${BLKSIZE} bytes per form (second round; sink received ${received})`);
console.log(results.join('\n'));
