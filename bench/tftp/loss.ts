/**
 * Issue 19 item 9: downloads under UDP loss each way (nftables numgen on arrival) and optional
 * duplication (nftables netdev egress `dup`), ours against tftpd-hpa in the same run
 * (test/tftp/loss-run.ts). Prints the JSON tallies. TOFU_SERVE=FILE runs another server launcher
 * as "ours" (an older checkout's bench/tftp/serve-defaults.ts, for a before figure);
 * TOFU_CLIENTS=atftp,tftp-hpa,busybox,curl picks the clients (curl's TFTP stalls past 90 s under
 * this loss against either server, so it is left out by default).
 *   sudo node --conditions=@iot-tofu/source --import tsx bench/tftp/loss.ts [LOSS%] [DOWNLOADS] [BYTES] [DUP%] [PARALLEL]
 */
import { runLossyDownloads } from '../../test/tftp/loss-run.js';
import type { LossClient } from '../../test/tftp/loss-run.js';

const lossPercent = Math.min(Number(process.argv[2] ?? '15'), 50);
const downloads = Math.min(Number(process.argv[3] ?? '16'), 100);
const bytes = Math.min(Number(process.argv[4] ?? '32768'), 50_000_000);
const dupPercent = Math.min(Number(process.argv[5] ?? '0'), 50);
const parallel = Math.min(Number(process.argv[6] ?? '8'), 16);
const result = await runLossyDownloads({
  lossPercent,
  dupPercent,
  downloads,
  parallel,
  bytes,
  clients: (process.env.TOFU_CLIENTS ?? 'atftp,tftp-hpa,busybox').split(',') as LossClient[],
  hangMs: 120_000,
  progress: (line) => process.stderr.write(`${line}\n`),
  ...(process.env.TOFU_SERVE ? { serve: process.env.TOFU_SERVE } : {}),
});
process.stdout.write(`${JSON.stringify(result)}\n`);
