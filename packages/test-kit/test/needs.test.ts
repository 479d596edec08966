import { describe, expect, it } from 'vitest';
import { inCI, needs, unmet, which } from '../src/needs.js';

describe('needs()', () => {
  it('finds a program on PATH and names one that is missing', () => {
    expect(which('node')).toBeTruthy();
    expect(unmet('node')).toBeUndefined();
    expect(unmet('iot-tofu-no-such-program')).toBe('program iot-tofu-no-such-program');
    expect(needs.met('node')).toBe(true);
    expect(needs.met('node', 'iot-tofu-no-such-program')).toBe(false);
  });

  it('checks absolute paths as files and root against the effective uid', () => {
    expect(unmet(process.execPath)).toBeUndefined();
    expect(unmet('/nonexistent/iot-tofu/firmware.fd')).toBe('file /nonexistent/iot-tofu/firmware.fd');
    expect(unmet('root')).toBe(process.geteuid?.() === 0 ? undefined : 'root');
  });

  it('returns no options when met, and skips (or, in CI, marks for failure) with every unmet reason', () => {
    expect(needs('node')).toEqual({});
    const options = needs('node', 'iot-tofu-no-such-program', '/nonexistent/iot-tofu/x', 'iot-tofu-no-such-program');
    const reason = ['program iot-tofu-no-such-program', 'file /nonexistent/iot-tofu/x'];
    expect(options).toEqual(inCI ? { meta: { needsUnmet: reason } } : { skip: true, meta: { needsSkipped: reason } });
  });
});
