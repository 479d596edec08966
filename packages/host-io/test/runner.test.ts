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

  it.runIf(findSetpriv() !== undefined)('a failure names the program run, not setpriv (where setpriv exists)', async () => {
    const error = await childrenDieWithUs(execFileRunner)('ls', ['/nonexistent-iot-tofu']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandFailedError);
    expect(error).toMatchObject({ file: 'ls', args: ['/nonexistent-iot-tofu'], exitCode: 2 });
    expect((error as Error).message).toMatch(/^ls \/nonexistent-iot-tofu failed \(exit 2\): /);
  });

  it('a failure through a recorded wrapper keeps the program the caller ran and its exit code', async () => {
    const failing: CommandRunner = async (file, args) => {
      throw new CommandFailedError(file, args, 3, 'boom');
    };
    const error = await childrenDieWithUs(failing, '/usr/bin/setpriv')('cp', ['-a', 'x', 'y']).catch((e: unknown) => e);
    expect(error).toMatchObject({ file: 'cp', args: ['-a', 'x', 'y'], exitCode: 3, stderr: 'boom' });
    expect((error as Error).message).toBe('cp -a x y failed (exit 3): boom');
  });

  it('without setpriv the runner is used as it is', async () => {
    expect(childrenDieWithUs(recorder, '')).toBe(recorder); // '' = no setpriv found
    expect(findSetpriv(['/nonexistent/setpriv'])).toBeUndefined();
  });
});
