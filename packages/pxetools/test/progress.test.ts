// Progress (issue 13): a bar on a terminal, plain lines otherwise, nothing with --json.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatBytes, progressReporter, type CliIo } from '../src/terminal.js';

const MB = 1024 * 1024;

function io(tty: boolean): { io: CliIo; err: () => string } {
  const stderr = Object.assign(new PassThrough(), { isTTY: tty });
  let text = '';
  stderr.on('data', (d: Buffer) => (text += d.toString()));
  const stdout = Object.assign(new PassThrough(), { isTTY: tty });
  const stdin = Object.assign(new PassThrough(), { isTTY: tty });
  return { io: { stdin, stdout, stderr, env: {}, isRoot: () => true }, err: () => text };
}

describe('progressReporter', () => {
  it('draws a bar in place on a terminal, throttled to 100 ms, one line per phase', () => {
    const { io: t, err } = io(true);
    let clock = 0;
    const bar = progressReporter(t, { now: () => clock });
    bar.update({ phase: 'decompress', done: 0, total: 0 });
    clock = 10;
    bar.update({ phase: 'extract-root', done: 0, total: 400 * MB });
    clock = 50; // throttled: not drawn
    bar.update({ phase: 'extract-root', done: 100 * MB, total: 400 * MB });
    clock = 200;
    bar.update({ phase: 'extract-root', done: 200 * MB, total: 400 * MB });
    clock = 210; // the end is always drawn
    bar.update({ phase: 'extract-root', done: 400 * MB, total: 400 * MB });
    bar.done();
    expect(err()).toBe(
      '\rDecompressing...\x1b[K\n' +
        `\rExtracting root [${'.'.repeat(30)}] 0% 0 KB/400 MB\x1b[K` +
        `\rExtracting root [${'#'.repeat(15)}${'.'.repeat(15)}] 50% 200 MB/400 MB\x1b[K` +
        `\rExtracting root [${'#'.repeat(30)}] 100% 400 MB/400 MB\x1b[K\n`,
    );
  });

  it('writes plain lines when stderr is not a terminal: the phase, each quarter once, no escapes', () => {
    const { io: plain, err } = io(false);
    const bar = progressReporter(plain);
    bar.update({ phase: 'decompress', done: 0, total: 0 });
    for (let done = 0; done <= 100; done += 5) bar.update({ phase: 'copy', done: done * MB, total: 100 * MB });
    bar.done();
    expect(err()).toBe(
      'Decompressing...\nCopying root: 0% (0 KB of 100 MB)\nCopying root: 25% (25 MB of 100 MB)\nCopying root: 50% (50 MB of 100 MB)\nCopying root: 75% (75 MB of 100 MB)\nCopying root: 100% (100 MB of 100 MB)\n',
    );
    expect(err()).not.toMatch(/[\r\x1b]/);
  });

  it('is silent with --json, on a terminal or not', () => {
    for (const tty of [true, false]) {
      const { io: j, err } = io(tty);
      const bar = progressReporter(j, { json: true });
      bar.update({ phase: 'copy', done: 1, total: 2 });
      bar.update({ phase: 'copy', done: 2, total: 2 });
      bar.done();
      expect(err()).toBe('');
    }
  });

  it('formats small sizes in KB', () => {
    expect(formatBytes(0)).toBe('0 KB');
    expect(formatBytes(300 * 1024)).toBe('300 KB');
    expect(formatBytes(5 * MB)).toBe('5 MB');
  });
});
