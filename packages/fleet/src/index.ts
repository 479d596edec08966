export { Fleet, PI_EXPORT_OPTIONS, networkOf, defaultExportsClients, copyTree, parseNeighbours, BASE_NAME_PATTERN } from './fleet.js';
export type { Neighbour } from './fleet.js';
export { FleetError } from './errors.js';
export type { FleetErrorCode } from './errors.js';
export { parseDiskSize, planDockerDiskUnits, DISK_SIZE_PATTERN, DOCKER_DISK_IMAGE, DOCKER_DISK_MOUNT_UNIT } from './docker-disk.js';
export { checkPasswordHash, checkSshKeys } from './first-login.js';
export { planRootfs, applyRootfs, MASKED_UNITS, REMOVED_INIT_SCRIPTS, SSH_KEYGEN_UNIT } from './rootfs.js';
export type { RootfsAction, RootfsPlanInput } from './rootfs.js';
export { decodeMbr, findPiPartitions, FAT_TYPES, LINUX_TYPE } from './mbr.js';
export type { MbrPartition } from './mbr.js';
export { parseMountinfo } from './fs-util.js';
export { chooseSetupSource } from './setup-source.js';
export {
  CONFIG_FILE_ENV,
  ConfigError,
  DEFAULT_CONFIG_FILE,
  FLEET_DEFAULTS,
  FLEET_KEYS,
  VALUE_CHECKS,
  configFilePath,
  defaultServerIp,
  detectServerIp,
  envName,
  flagName,
  mergeLayers,
  nonInternalIPv4s,
  readConfigFile,
  refuse,
  resolveFleetConfig,
} from './config.js';
export type { ConfigLayers, FleetConfig, KeySpec, MergeOptions, ValueSource } from './config.js';
export type { SetupSourceFields, SetupSourceProblem } from './setup-source.js';
export type {
  FleetOptions,
  FleetHealth,
  FleetStep,
  PiJson,
  MacSource,
  DiscoveredPi,
  BaseJson,
  AddRequest,
  AddResult,
  Progress,
  ProgressOptions,
  SetupSource,
  SetupRequest,
  SetupResult,
  RemoveResult,
  ResizeDockerDiskResult,
  DockerDiskJson,
  FirstLoginJson,
  SeenFact,
  TimelineEvent,
  RegistryChange,
  CommandRunner,
  Logger,
} from './types.js';
export type { NfsHealth, ActiveExport } from '@iot-tofu/nfs-server-lite';
