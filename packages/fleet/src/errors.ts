import { IotTofuError } from '@iot-tofu/errors';

/** Stable codes the CLI prints and the HTTP API maps to statuses. */
export type FleetErrorCode =
  | 'PI_EXISTS'
  | 'IP_TAKEN'
  | 'PI_NOT_FOUND'
  | 'PI_BUSY'
  | 'PI_MOUNTED'
  | 'BASE_NOT_FOUND'
  | 'BASE_EXISTS'
  | 'BASE_IN_USE'
  | 'BASE_INVALID'
  | 'NOT_SET_UP'
  | 'NOT_ROOT'
  | 'INVALID_REQUEST'
  | 'INVALID_OWNER'
  | 'IMPORT_FAILED'
  | 'COPY_FAILED'
  | 'LOCKED'
  | 'REGISTRY_CORRUPT'
  | 'DOCKER_DISK_FAILED';

export class FleetError extends IotTofuError {
  declare readonly code: FleetErrorCode;
  constructor(code: FleetErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Suggested HTTP status per code (the API may use it as is). */
export const HTTP_STATUS_BY_CODE: Readonly<Record<string, number>> = {
  PI_EXISTS: 409,
  IP_TAKEN: 409,
  INVALID_IP: 400,
  BASE_EXISTS: 409,
  BASE_IN_USE: 409,
  PI_BUSY: 409,
  PI_MOUNTED: 409,
  LOCKED: 503,
  PI_NOT_FOUND: 404,
  BASE_NOT_FOUND: 404,
  NOT_SET_UP: 409,
  NOT_ROOT: 403,
  INVALID_REQUEST: 400,
  INVALID_OWNER: 400,
  INVALID_SERIAL: 400,
  INVALID_NAME: 400,
  INVALID_MAC: 400,
  BASE_INVALID: 400,
  IMPORT_FAILED: 422,
  COPY_FAILED: 500,
  EXPORTFS_FAILED: 500,
  REGISTRY_CORRUPT: 500,
  DOCKER_DISK_FAILED: 500,
};
