import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../lab/index.js';
import { needs } from '../needs.js';

describe('test lab (network namespaces)', needs('netns'), () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await Lab.create([
      { name: 'a', address: '10.77.0.1/24' },
      { name: 'b', address: '10.77.0.2/24' },
    ]);
  });
  afterAll(async () => lab?.close());

  it('connects two hosts over the bridge', async () => {
    const result = await lab.run('a', 'ping', ['-c', '1', '-W', '2', '10.77.0.2']);
    expect(result.code).toBe(0);
  });

  it('removes every namespace it made on close', async () => {
    const extra = await Lab.create([{ name: 'x', address: '10.77.0.9/24' }]);
    const ns = extra.ns('x');
    await extra.close();
    const list = await lab.run('a', 'ip', ['netns', 'list']);
    expect(list.stdout).not.toContain(ns);
  });
});
