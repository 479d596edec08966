// Kept for the benches written before needs(): tests declare what they need with needs() (@iot-tofu/test-kit).
import { inCI, unmet, which } from '@iot-tofu/test-kit';

export { inCI, which };

/**
 * @deprecated use `needs(...programs)` from @iot-tofu/test-kit as the suite's options: it skips with a
 * reason outside CI and fails each test in CI. This throws in CI, failing the whole file.
 */
export function havePeers(...commands: string[]): boolean {
  const missing = commands.filter((c) => unmet(c) !== undefined);
  if (missing.length === 0) return true;
  if (inCI) throw new Error(`peer programs missing in CI: ${missing.join(', ')} (add them to .ci/apt-packages.txt)`);
  return false;
}

/** @deprecated use `needs('netns')` from @iot-tofu/test-kit. */
export function canUseNetns(): boolean {
  const reason = unmet('netns');
  if (reason && inCI) throw new Error(`network-namespace tests need ${reason} in CI`);
  return reason === undefined;
}
