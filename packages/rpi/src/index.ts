export { parseSerial, serialFolder, serialFromNumber, isSerialFolderName, InvalidSerialError } from './serial.js';
export type { PiSerial } from './serial.js';
export {
  normalizeMac,
  macFromBytes,
  macToBytes,
  hasRaspberryPiOui,
  derivedMacFromSerial,
  macPrefixFolder,
  RASPBERRY_PI_OUIS,
  InvalidMacError,
} from './mac.js';
export { parsePiGuid, encodePiGuid } from './guid.js';
export type { PiGuid } from './guid.js';
export { PI_MODELS, MODEL_INFO, isPiModel } from './models.js';
export type { PiModel, ModelInfo } from './models.js';
export { bootSequence, requiredBootFiles, allRequiredBootFiles } from './boot-files.js';
export type { BootRequest, BootVariant } from './boot-files.js';
export { readBootVariant, initramfsFor } from './config-txt.js';
export { netbootCmdline, splitCmdline, CMDLINE_RULES, CMDLINE_ADDED, DEFAULT_BASE_CMDLINE, NFS_ROOT_MOUNT_OPTIONS } from './cmdline.js';
export type { CmdlineRule, NetbootCmdline, NetbootCmdlineOptions } from './cmdline.js';
export {
  renderFstab,
  BOOT_MOUNT_OPTIONS,
  renderHostname,
  renderHosts,
  renderConfigTxt,
  normalizeConfigTxt,
  renderOwnerFile,
  isValidHostname,
  checkHostname,
  InvalidNameError,
  renderDockerDiskUnits,
  renderDockerDiskDropIn,
  renderUserconf,
  DOCKER_DISK_PATH,
  DOCKER_DISK_CONTAINERD_DIR,
  DOCKER_DISK_FSCK_UNIT,
  DOCKER_DISK_MOUNT_UNIT,
  CONTAINERD_MOUNT_UNIT,
  DOCKER_DISK_DROPIN,
  USER_NAME_PATTERN,
  PASSWORD_HASH_PATTERN,
} from './boot-config.js';
export type { FstabOptions, ConfigTxtSection } from './boot-config.js';
export {
  SERIAL_PATTERN,
  MAC_PATTERN,
  HOSTNAME_PATTERN,
  OWNER_PATTERN,
  IPV4_PATTERN,
  checkOwner,
  checkIpv4,
  InvalidOwnerError,
  InvalidIpError,
} from './fields.js';
