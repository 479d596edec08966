export { writeFileAtomic, syncDir } from './atomic.js';
export type { AtomicWriteOptions } from './atomic.js';
export { acquireLock, LockBusyError, parseLockOwner, processAlive, processStartTime } from './lock.js';
export type { LockOptions } from './lock.js';
export { execFileRunner, CommandFailedError, childrenDieWithUs, findSetpriv } from './runner.js';
export type { CommandRunner, CommandResult, RunOptions } from './runner.js';
export { silentLogger } from './logger.js';
export type { Logger } from './logger.js';
