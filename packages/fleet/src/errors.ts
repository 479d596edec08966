import { IotTofuError } from '@iot-tofu/errors';

/** Stable codes the CLI prints; the HTTP API's status for each is in boot-server's src/api/errors.ts. */
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
