import { createSocket } from 'node:dgram';
import { pathToFileURL } from 'node:url';
import { encodeTftpPacket } from '@iot-tofu/tftp';

/**
 * Keeps a TftpServer's main lane busy so that its next transfers go to the transfer threads: the
 * main thread is a lane too and wins ties, so without this a test that downloads one file at a
 * time never leaves the main thread. Requests `file` in netascii (always served on the main
 * thread) with the RFC 2349 timeout at its 255 s maximum and never ACKs the OACK: the transfer
 * stays running, without a retransmission, until the server closes or `release()` is called.
 *
 * Also a command line for namespaces (prints `parked`, then waits to be killed):
 *   node --conditions=@iot-tofu/source --import tsx test/tftp/main-lane.ts HOST PORT FILE
 */
export interface ParkedTransfer {
  /** The server's port for the parked transfer (its TID). */
  readonly serverPort: number;
  /** Ends the parked transfer (ERROR 0, like a client that gives up) and closes the socket. */
  release(): Promise<void>;
}

export function parkOnMainLane(host: string, port: number, file: string, timeoutMs = 5000): Promise<ParkedTransfer> {
  const socket = createSocket('udp4');
  return new Promise<ParkedTransfer>((resolve, reject) => {
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`no OACK for ${file} from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', fail);
    socket.on('message', (msg, rinfo) => {
      if (rinfo.address !== host) return;
      clearTimeout(timer);
      socket.removeAllListeners('message');
      // OACK (opcode 6) is what a parked request gets; anything else (ERROR) means it did not park.
      if (msg.readUInt16BE(0) !== 6) {
        socket.close();
        reject(new Error(`${file} did not park: opcode ${msg.readUInt16BE(0)} ${msg.subarray(4).toString('latin1')}`));
        return;
      }
      let released = false;
      resolve({
        serverPort: rinfo.port,
        release: () => {
          if (released) return Promise.resolve();
          released = true;
          return new Promise<void>((done) => {
            socket.send(encodeTftpPacket({ type: 'error', code: 0, message: 'done' }), rinfo.port, host, () => socket.close(() => done()));
          });
        },
      });
    });
    socket.bind(0, () =>
      socket.send(encodeTftpPacket({ type: 'rrq', filename: file, mode: 'netascii', options: { timeout: '255' } }), port, host),
    );
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [host, port, file] = process.argv.slice(2);
  await parkOnMainLane(host!, Number(port), file!);
  process.stdout.write('parked\n');
  setInterval(() => undefined, 60_000);
}
