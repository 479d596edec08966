import { execFile } from 'node:child_process';
import { isIpv4 } from './codec.js';

/**
 * Before a fresh address is offered: is someone already using it? Resolves true when it answered.
 * Node has no raw sockets, so neither an ICMP echo nor an ARP probe can be sent from JavaScript;
 * like dnsmasq (which pings before offering) we run the system's `ping` once with a short timeout.
 * A host that ignores pings is caught afterwards by the client's own ARP check and DHCPDECLINE.
 */
export type ConflictCheck = (address: string) => Promise<boolean>;

/** Runs a program without a shell; resolves with its exit code (null when it could not run). */
export type ExitCodeRunner = (file: string, args: readonly string[], timeoutMs: number) => Promise<number | null>;

const defaultRunner: ExitCodeRunner = (file, args, timeoutMs) =>
  new Promise((resolve) => {
    execFile(file, [...args], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error) => {
      if (!error) return resolve(0);
      const code = (error as NodeJS.ErrnoException & { code?: unknown }).code;
      resolve(typeof code === 'number' ? code : null);
    });
  });

export interface PingConflictCheckOptions {
  /** How long to wait for the echo reply; default 500 ms (dnsmasq waits up to 3 s, Pi 4s resend every 4 s). */
  timeoutMs?: number;
  /** `ping` (from PATH) unless given. */
  command?: string;
  runner?: ExitCodeRunner;
  /** Called when ping could not run or failed (exit 2+): the address is then treated as free. */
  onError?: (address: string, detail: string) => void;
}

/**
 * `ping -n -q -c 1 -W <s> <address>`: exit 0 = an echo reply came back (in use), 1 = none (free),
 * anything else = ping could not tell (treated as free, reported through onError: DECLINE remains
 * the safety net).
 */
export function pingConflictCheck(options: PingConflictCheckOptions = {}): ConflictCheck {
  const timeoutMs = options.timeoutMs ?? 500;
  const runner = options.runner ?? defaultRunner;
  const command = options.command ?? 'ping';
  return async (address) => {
    if (!isIpv4(address)) return false;
    const wait = Math.max(timeoutMs / 1000, 0.1).toFixed(1);
    // The process gets a margin over ping's own deadline for start-up; then it is killed.
    const code = await runner(command, ['-n', '-q', '-c', '1', '-W', wait, address], timeoutMs + 1500);
    if (code === 0) return true;
    if (code !== 1) options.onError?.(address, code === null ? `${command} did not run or timed out` : `${command} exited with ${code}`);
    return false;
  };
}
