// Setup file (vitest.config.ts setupFiles): in CI a test whose needs are unmet fails with them.
// Outside CI needs() already skipped it, so this hook finds nothing to do.
import { beforeEach } from 'vitest';
import { installCommand } from '@iot-tofu/test-kit';

beforeEach(({ task }) => {
  const unmetNeeds = task.meta.needsUnmet;
  if (unmetNeeds) throw new Error(`unmet test needs in CI: ${unmetNeeds.join('; ')} (root for root/netns; programs: ${installCommand})`);
});
