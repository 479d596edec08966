export { Lab, collect, stopProcess, waitForOutput } from './netns.js';
export type { LabHostSpec, RunResult } from './netns.js';
export { havePeers, canUseNetns, inCI, which } from './peers.js';
export { repoRoot, tsNodeArgs } from './node.js';
