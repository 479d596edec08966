/**
 * Not-found probe latency (a Pi asks for many files that do not exist): sends `count` RRQs for a
 * missing file one after another from one socket, each answered by ERROR 1 from a new TID, and
 * prints the latency percentiles in microseconds as JSON. Bounded: every wait times out.
 *   node --conditions=@iot-tofu/source --import tsx bench/tftp/probe.ts HOST PORT COUNT
 */
import { createSocket } from 'node:dgram';
import { encodeTftpPacket } from '@iot-tofu/tftp';

const [host = '127.0.0.1', portText = '69', countText = '200'] = process.argv.slice(2);
const port = Number(portText);
const count = Math.min(Number(countText), 10_000);
const socket = createSocket('udp4');
await new Promise<void>((resolve) => socket.bind(0, resolve));

const latencies: number[] = [];
let lost = 0;
for (let i = 0; i < count; i++) {
  const rrq = encodeTftpPacket({ type: 'rrq', filename: `missing-${i % 10}.bin`, mode: 'octet', options: { tsize: '0', blksize: '1468' } });
  const started = process.hrtime.bigint();
  const answered = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', onMessage);
      resolve(false);
    }, 1000);
    const onMessage = (msg: Buffer) => {
      if (msg.length >= 4 && msg[1] === 5) {
        clearTimeout(timer);
        socket.off('message', onMessage);
        resolve(true);
      }
    };
    socket.on('message', onMessage);
    socket.send(rrq, port, host);
  });
  if (answered) latencies.push(Number(process.hrtime.bigint() - started) / 1000);
  else lost++;
}
socket.close();
latencies.sort((a, b) => a - b);
const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
process.stdout.write(`${JSON.stringify({ count, lost, p50: pick(0.5), p90: pick(0.9), p99: pick(0.99) })}\n`);
