import { describe, expect, it } from 'vitest';
import { needs } from '../needs.js';
import { runLossyDownloads } from './loss-run.js';

/**
 * Issue 19 item 9: 15 % of UDP dropped on arrival each way (nftables numgen; the kernel has no
 * netem). atftp (options → OACK) and tftp-hpa (plain) download a 32 KiB file from our server and
 * from tftpd-hpa in the same run. Asserted: no client hangs against ours, and ours completes at
 * least as many downloads as tftpd-hpa. Figures from more rounds: bench/tftp/loss.ts.
 */
describe('TFTP under 15 % loss each way, ours vs tftpd-hpa in the same run', needs('netns', 'nft', 'in.tftpd', 'atftp', 'tftp'), () => {
  it('never hangs a client and completes at least as many downloads as tftpd-hpa', async () => {
    const result = await runLossyDownloads({ lossPercent: 15, downloads: 4, bytes: 32_768, clients: ['atftp', 'tftp-hpa'], hangMs: 60_000 });
    const total = (side: typeof result.ours) => Object.values(side).reduce((n, t) => n + t.ok, 0);
    for (const [client, tally] of Object.entries(result.ours)) expect(tally.hung, `${client} hung against ours: ${tally.errors.join(' / ')}`).toBe(0);
    for (const tally of Object.values(result.ours)) expect(tally.corrupt).toBe(0);
    expect(total(result.ours), JSON.stringify(result)).toBeGreaterThanOrEqual(total(result.tftpdHpa));
  }, 900_000);
});
