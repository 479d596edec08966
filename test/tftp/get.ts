/**
 * Command-line wrapper of the test client, for running inside a network namespace:
 *   node --conditions=@iot-tofu/source --import tsx test/tftp/get.ts '<GetOptions as JSON>'
 * Prints the GetResult (without the data) as one JSON line; exit code 0 when the download worked.
 */
import { tftpGet } from '../../packages/tftp/test/client.js';
import type { GetOptions } from '../../packages/tftp/test/client.js';

const options = JSON.parse(process.argv[2] ?? '{}') as GetOptions;
const result = await tftpGet({ ...options, keep: false });
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);
