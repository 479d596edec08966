// Shared test helpers of the iot-tofu workspace (private, never packaged): what a test needs
// (needs), child processes (collect, waitForOutput, stopProcess), running workspace code from
// source (repoRoot, tsNodeArgs), throw-away LANs of network namespaces (Lab) and warnings a test
// expects (allowWarnings).
export { inCI, installCommand, needs, unmet, which, type Need, type NeedsMeta, type NeedsOptions } from './needs.js';
export { collect, stopProcess, waitForOutput, type RunResult } from './process.js';
export { repoRoot, tsNodeArgs } from './node.js';
export { Lab, type LabHostSpec, type LabRunOptions } from './netns.js';
export { allowWarnings, type RecordedWarning } from './warnings.js';
