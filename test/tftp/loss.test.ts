import { describe, expect, it } from 'vitest';
import { needs } from '../needs.js';
import { runLossyDownloads } from './loss-run.js';

/**
 * Issue 19 item 9: 15 % of UDP dropped on arrival each way (nftables numgen; the kernel has no
 * netem). atftp (options → OACK) and tftp-hpa (plain) download a 32 KiB file from our server and
 * from tftpd-hpa in the same run. Asserted: no client hangs against ours, no download is corrupt,
 * and with tftp-hpa ours completes at least as many as tftpd-hpa. Not asserted: atftp, where ours
 * still completes fewer than tftpd-hpa (5–6 of 8 vs 7–8 of 8, bench/tftp/loss.ts; open, see the
 * tftp README).
 */
describe('TFTP under 15 % loss each way, ours vs tftpd-hpa in the same run', needs('netns', 'nft', 'in.tftpd', 'atftp', 'tftp'), () => {
  it('never hangs a client, never serves corrupt bytes; with tftp-hpa completes at least as many as tftpd-hpa', async () => {
    const result = await runLossyDownloads({ lossPercent: 15, downloads: 4, bytes: 32_768, clients: ['atftp', 'tftp-hpa'], hangMs: 60_000 });
    for (const [client, tally] of Object.entries(result.ours)) expect(tally.hung, `${client} hung against ours: ${tally.errors.join(' / ')}`).toBe(0);
    for (const tally of Object.values(result.ours)) expect(tally.corrupt).toBe(0);
    expect(result.ours['tftp-hpa']!.ok, JSON.stringify(result)).toBeGreaterThanOrEqual(result.tftpdHpa['tftp-hpa']!.ok);
  }, 900_000);
});
