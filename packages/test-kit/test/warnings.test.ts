import { EventEmitter } from 'node:events';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { allowWarnings } from '../src/index.js';
import { recordWarning, takeUnexpected, unexpectedWarningsError } from '../src/warnings.js';

// These tests run under fail-on-warnings.ts (vitest.config.ts setupFiles), the code they test.
describe('allowWarnings', () => {
  it('lets a test expect a console.warn and see its text', () => {
    const seen = allowWarnings(/stale lease/);
    console.warn('stale lease file %s', '/var/lib/x');
    expect(seen).toEqual(['stale lease file /var/lib/x']);
  });

  it('lets a test expect a process warning (emitted on the next tick)', async () => {
    const seen = allowWarnings('MaxListenersExceededWarning');
    const emitter = new EventEmitter();
    emitter.setMaxListeners(1);
    emitter.on('x', () => undefined);
    emitter.on('x', () => undefined);
    await tick();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^MaxListenersExceededWarning: Possible EventEmitter memory leak/);
  });

  it('ends a per-test allowance with its test', () => {
    // The first test allowed /stale lease/; here the same text is unexpected again.
    expect(recordWarning({ source: 'console.warn', text: 'stale lease file' })).toBe(false);
    expect(takeUnexpected()).toEqual([{ source: 'console.warn', text: 'stale lease file' }]);
  });

  it('names every unexpected warning and the way to allow one', () => {
    const error = unexpectedWarningsError(
      [
        { source: 'process', text: 'DeprecationWarning: Buffer() is deprecated' },
        { source: 'console.error', text: 'boom\n    at stack' },
      ],
      'during this test',
    );
    expect(error.message).toBe(
      '2 unexpected warning(s) during this test:\n  process: DeprecationWarning: Buffer() is deprecated\n  console.error: boom\n' +
        'Fix the cause; a test that expects one declares it with allowWarnings(pattern) from @iot-tofu/test-kit.',
    );
  });
});
