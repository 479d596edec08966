import { describe, expect, it } from 'vitest';
import { CommandFailedError, childrenDieWithUs, execFileRunner, findSetpriv, type CommandRunner } from '../src/runner.js';

describe('execFileRunner', () => {
  it('runs a program with an argument vector, never a shell', async () => {
    const result = await execFileRunner(process.execPath, [
      '-e',
      'process.stdout.write(process.argv[1]); process.stderr.write("e")',
      '$HOME; echo no',
    ]);
    expect(result).toEqual({ stdout: '$HOME; echo no', stderr: 'e' });
  });

  it('a non-zero exit rejects with CommandFailedError: exit code and the last stderr lines', async () => {
    const failing = execFileRunner(process.execPath, ['-e', 'console.error("one\\ntwo\\nthree\\nfour"); process.exit(3)']);
    await expect(failing).rejects.toBeInstanceOf(CommandFailedError);
    await expect(failing).rejects.toMatchObject({
      exitCode: 3,
      stderr: 'one\ntwo\nthree\nfour\n',
      message: expect.stringMatching(/failed \(exit 3\): two; three; four$/),
    });
  });

  it('a program that does not exist rejects too (no exit code)', async () => {
    await expect(execFileRunner('/nonexistent/iot-tofu-program', ['x'])).rejects.toMatchObject({
      name: 'CommandFailedError',
      exitCode: null,
    });
  });

  it('passes cwd and env, and kills a command past its timeout', async () => {
    const { stdout } = await execFileRunner(
      process.execPath,
      ['-e', 'process.stdout.write(process.cwd() + " " + process.env.IOT_TOFU_X)'],
      { cwd: '/', env: { IOT_TOFU_X: 'y' } },
    );
    expect(stdout).toBe('/ y');
    await expect(execFileRunner(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { timeoutMs: 200 })).rejects.toBeInstanceOf(
      CommandFailedError,
    );
  });
});

describe('childrenDieWithUs', () => {
  const calls: Array<[string, readonly string[]]> = [];
  const recorder: CommandRunner = async (file, args) => {
    calls.push([file, args]);
    return { stdout: '', stderr: '' };
  };

  it('prefixes every command with setpriv --pdeathsig KILL when setpriv is there', async () => {
    calls.length = 0;
    await childrenDieWithUs(recorder, '/usr/bin/setpriv')('cp', ['-a', 'x', 'y']);
    expect(calls).toEqual([['/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', 'cp', '-a', 'x', 'y']]]);
  });

  it('without setpriv the runner is used as it is', async () => {
    expect(childrenDieWithUs(recorder, '')).toBe(recorder); // '' = no setpriv found
    expect(findSetpriv(['/nonexistent/setpriv'])).toBeUndefined();
  });
});
