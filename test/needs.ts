// needs() lives in the shared test kit (packages/test-kit/src/needs.ts); root tests import it here.
export { inCI, installCommand, needs, unmet, which, type Need, type NeedsMeta, type NeedsOptions } from '@iot-tofu/test-kit';
