// The HTTP API's public entry: the app lives in ./api/ (server.ts says how to add routes).
export { buildApi, publicRoutes } from './api/server.js';
export type { ApiOptions, ApiRoutes } from './api/server.js';
export { HTTP_STATUS_BY_CODE, statusForError, sendError } from './api/errors.js';
export type { ErrorCode, ErrorStatus } from './api/errors.js';
export { describeValidation, validationField } from './api/validation.js';
export { fleetPort, UNPRIVILEGED_HINT } from './api/fleet-adapter.js';
export type { FleetPort, FleetVerbs, AddPiInput, SetupInput, ResetInput } from './api/fleet-port.js';
