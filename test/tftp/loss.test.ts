import { describe, expect, it } from 'vitest';
import { needs } from '../needs.js';
import { runLossyDownloads } from './loss-run.js';

/**
 * Issue 19 item 9: 15 % of UDP dropped on arrival each way (nftables numgen; the kernel has no
 * netem). atftp (options → OACK) and tftp-hpa (plain) each download a 32 KiB file 24 times from
 * our server and 24 times from tftpd-hpa, 8 at a time per server, in the same run.
 *
 * What is asserted holds whatever the dice and the load: counts, never timings. Every client
 * process ends within 120 s (none hangs), none gets corrupt bytes, and ours completes as many
 * downloads as tftpd-hpa per client, within the dice (DICE_MARGIN). Measured with these rules
 * (bench/results/hostile.json): atftp ours 15-16 of 16 vs tftpd-hpa 12-14 of 16 (its 1 s OACK
 * timer crosses a lost ACK 0, and atftp aborts on the second OACK); tftp-hpa 15-16 of 16 from
 * both. Before the fix atftp completed 5-6 of 8 from us: the server gave up on a stall before
 * atftp's own 5 s timeout let it speak (test/tftp/loss-rules.test.ts has that rule on a fake clock).
 */
const DOWNLOADS = 24;
/**
 * Two servers equally good still differ by the dice: at 95 % success over 24 downloads each, the
 * difference of the counts has a standard deviation of about 1.5, so "ours >= theirs" failed one
 * run in several (23 vs 24, tftp-hpa). Three downloads of slack keeps a false alarm near 1 % and
 * still catches the regression this guards (before the fix atftp lost about 5 in 24 more from us).
 * The bench (bench/tftp/loss.ts) measures the comparison itself.
 */
const DICE_MARGIN = 3;

describe('TFTP under 15 % loss each way, ours vs tftpd-hpa in the same run', needs('netns', 'nft', 'in.tftpd', 'atftp', 'tftp'), () => {
  it('no client hangs, no corrupt bytes, and ours completes as many downloads as tftpd-hpa (within the dice)', async () => {
    const result = await runLossyDownloads({
      lossPercent: 15,
      downloads: DOWNLOADS,
      parallel: 8,
      bytes: 32_768,
      clients: ['atftp', 'tftp-hpa'],
      hangMs: 120_000,
    });
    for (const [client, ours] of Object.entries(result.ours)) {
      const peer = result.tftpdHpa[client]!;
      const said = `ours ${ours.ok}/${DOWNLOADS} (${ours.errors.join(' / ')}), tftpd-hpa ${peer.ok}/${DOWNLOADS} (${peer.errors.join(' / ')})`;
      expect(ours.hung, `${client} hung against ours: ${said}`).toBe(0);
      expect(ours.corrupt, `${client} got corrupt bytes from ours: ${said}`).toBe(0);
      // The run measured something: every download ended one way or another.
      expect(ours.ok + ours.failed + ours.hung + ours.corrupt, client).toBe(DOWNLOADS);
      expect(peer.ok + peer.failed + peer.hung + peer.corrupt, client).toBe(DOWNLOADS);
      expect(ours.ok, `${client}: ${said}`).toBeGreaterThanOrEqual(peer.ok - DICE_MARGIN);
    }
  }, 900_000);
});
