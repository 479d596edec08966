import { describe, expect, it } from 'vitest';
import { addToIpv4, runCli } from '../src/cli.js';

async function cli(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

describe('rpi-sim command line', () => {
  it.each([
    [['--pis', 'x'], /--pis <n>.*expected a whole number from 1 to 5000/],
    [['--pis', '0'], /expected a whole number from 1 to 5000/],
    [['--model', 'pi9'], /expected one of pi3b, pi3b\+, pi4, pi5/],
    [['--server', '10.77.0'], /expected an IPv4 address like 10.77.0.2/],
    [['--static-ip', '10.77.1.1'], /--static-ip needs --server/],
    [['--bogus'], /unknown option '--bogus'/],
  ])('rejects %j with a clear message and exit code 64', async (argv, message) => {
    const result = await cli(...argv);
    expect(result.code).toBe(64);
    expect(result.stderr).toMatch(message);
  });

  it('prints help with exit code 0', async () => {
    const result = await cli('--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--pis <n>');
  });

  it('adds offsets to dotted quads across octets', () => {
    expect(addToIpv4('10.77.1.1', 0)).toBe('10.77.1.1');
    expect(addToIpv4('10.77.1.250', 10)).toBe('10.77.2.4');
    expect(addToIpv4('10.77.255.255', 1)).toBe('10.78.0.0');
  });
});
