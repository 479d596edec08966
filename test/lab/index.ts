// The lab's process and namespace helpers live in the shared test kit (packages/test-kit); root
// tests and benches import them here, beside the lab peers of this folder (ganesha, netboot-kernel).
export { Lab, collect, repoRoot, stopProcess, tsNodeArgs, waitForOutput, type LabHostSpec, type RunResult } from '@iot-tofu/test-kit';
export { havePeers, canUseNetns, inCI, which } from './peers.js';
