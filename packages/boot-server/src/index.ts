export {
  resolveConfig,
  defaultServerIp,
  nonInternalIPv4s,
  envName,
  ConfigError,
  DEFAULT_CONFIG,
  DHCP_ANSWERS,
  LOG_LEVELS,
} from './config.js';
export type { BootServerConfig, ConfigLayers, ConfigHost, LogLevel } from './config.js';
export { EventBus, BOOT_EVENT_NAMES } from './events.js';
export type { BootEvents, BootEventName } from './events.js';
export { createMetrics, fileLabel } from './metrics.js';
export type { BootMetrics, LiveStats } from './metrics.js';
export { createLogger } from './logger.js';
export type { LoggerOptions } from './logger.js';
export { buildApi, publicRoutes, statusForError, HTTP_STATUS_BY_CODE, fleetPort } from './api.js';
export type { ApiOptions, ApiRoutes, ErrorCode, ErrorStatus, FleetVerbs } from './api.js';
export type { FleetPort, AddPiInput, SetupInput, ResetInput } from './api.js';
export { ensureApiToken } from './files.js';
export { BootServer, startBootServer, keysNeedingRestart, RESTART_KEYS, StartupError } from './daemon.js';
export type { BootServerDeps, ListeningSocket } from './daemon.js';
export { BootTracker, splitServedPath } from './boot-tracker.js';
export type { BootOutcome, TrackedEvent } from './boot-tracker.js';
export {
  AdmissionGate,
  DEFAULT_ADAPTIVE_TUNING,
  DEFAULT_GATE_TIMING,
  PI_FILE_LIMIT_MS,
  admissionMode,
  admitNewPi,
  steerCapacity,
} from './admission.js';
export { proxyPolicy, threeSpaceMenuMatcher } from './proxy-policy.js';
export type { PolicyConfig } from './proxy-policy.js';
export type {
  AdaptiveTuning,
  AdmissionBudget,
  AdmissionMode,
  AdmissionRequest,
  AdmissionSnapshot,
  AdmissionState,
  GateTiming,
  KernelSample,
  SteerState,
} from './admission.js';
export { loadConfig, DEFAULT_CONFIG_FILE } from './load-config.js';
export type { LoadConfigInput } from './load-config.js';
export {
  installBootServer,
  renderSystemdUnit,
  renderSysusers,
  renderTmpfiles,
  defaultConfigFileText,
  fleetPathsOf,
  UNIT_NAME,
  SERVICE_USER,
} from './install.js';
export type { InstallOptions, InstallResult, InstallAction, UnitOptions, FleetPaths } from './install.js';
export { uninstallBootServer } from './uninstall.js';
export type { UninstallOptions, UninstallResult } from './uninstall.js';
export { runDoctor, renderDoctor, parseProcNet, portHolders, eepromAdvice, EEPROM_SETTINGS } from './doctor.js';
export type { DoctorCheck, DoctorOptions, DoctorReport, ProcSocket } from './doctor.js';
export { collectStatus, renderStatus, writeRuntimeFile, RUNTIME_FILE } from './status.js';
export type { StatusReport, RuntimeFile } from './status.js';
