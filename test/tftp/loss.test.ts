import { describe, expect, it } from 'vitest';
import { needs } from '../needs.js';
import { runLossyDownloads } from './loss-run.js';

/**
 * Issue 19 item 9: 15 % of UDP dropped on arrival each way (nftables numgen; the kernel has no
 * netem). atftp (options → OACK) and tftp-hpa (plain) download a 32 KiB file from our server and
 * from tftpd-hpa in the same run. Asserted, because it holds whatever the dice: no client hangs
 * against ours and no download is corrupt. How many complete is a figure of random drops (4
 * downloads per client: ours 3 vs tftpd-hpa 4 happens by chance), so the comparison lives in
 * bench/tftp/loss.ts over more rounds; the tftp README has the current figures (atftp still
 * completes fewer from us than from tftpd-hpa: open).
 */
describe('TFTP under 15 % loss each way, ours vs tftpd-hpa in the same run', needs('netns', 'nft', 'in.tftpd', 'atftp', 'tftp'), () => {
  it('never hangs a client and never serves corrupt bytes', async () => {
    const result = await runLossyDownloads({ lossPercent: 15, downloads: 4, bytes: 32_768, clients: ['atftp', 'tftp-hpa'], hangMs: 60_000 });
    for (const [client, tally] of Object.entries(result.ours)) expect(tally.hung, `${client} hung against ours: ${tally.errors.join(' / ')}`).toBe(0);
    for (const [client, tally] of Object.entries(result.ours)) expect(tally.corrupt, `${client} got corrupt bytes from ours`).toBe(0);
    // The run itself must have measured something: every download ended one way or another.
    for (const [client, tally] of Object.entries(result.ours)) expect(tally.ok + tally.failed + tally.hung + tally.corrupt, client).toBe(4);
  }, 900_000);
});
