/**
 * Our TftpServer with the daemon's defaults (limits, rates, retries), as its own process: what a
 * hostile LAN meets. Prints `listening <address>:<port>`, and its stats as JSON on SIGTERM.
 *   node --conditions=@iot-tofu/source --import tsx bench/tftp/serve-defaults.ts ROOT ADDRESS PORT [THREADS]
 */
import { FileSource, TftpServer } from '@iot-tofu/tftp';

const [root, address = '127.0.0.1', port = '69', threads = '0'] = process.argv.slice(2);
if (!root) {
  process.stderr.write('serve-defaults.ts: ROOT is required\n');
  process.exit(2);
}
const source = new FileSource({ root, sharedFolder: null });
const server = new TftpServer({ address, port: Number(port), source, threads: Number(threads) });
const bound = await server.start();
process.stdout.write(`listening ${bound.address}:${bound.port}\n`);
const stop = async () => {
  const stats = server.stats;
  await server.close();
  process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
