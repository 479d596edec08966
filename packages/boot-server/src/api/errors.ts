// The API's one error shape, `{"error":{code,message[,field]}}`, and the one table that decides the
// HTTP status of every error code the project throws. A code missing here is a compile error for
// the unions we can import (the fleet's, tftp's) and a failing test (test/api-errors.test.ts) for the rest.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyServerOptions } from 'fastify';
import { IotTofuError } from '@iot-tofu/errors';
import type { FleetErrorCode } from '@iot-tofu/fleet';
import type { FileErrorReason } from '@iot-tofu/tftp';
import { describeValidation, type ValidationIssue } from './validation.js';

/** Codes the API itself answers with (auth, routing, framework errors mapped to stable names). */
type ApiOwnCode =
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'BAD_REQUEST'
  | 'BAD_URL'
  | 'INVALID_JSON'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'REQUEST_TOO_LARGE'
  | 'INTERNAL';

/** The field validators of @iot-tofu/rpi (their classes carry the code as a plain string). */
type ValidatorCode =
  | 'INVALID_SERIAL'
  | 'INVALID_MAC'
  | 'INVALID_NAME'
  | 'INVALID_OWNER'
  | 'INVALID_IP'
  | 'INVALID_CMDLINE'
  | 'INVALID_CONFIG_TXT';

/** `not-found` → `NOT_FOUND` (one dash, as TftpFileError's `replace('-', '_')`). */
type UpperSnake<S extends string> = Uppercase<S extends `${infer A}-${infer B}` ? `${A}_${B}` : S>;

/** `TFTP_NOT_FOUND` … from tftp's FileErrorReason, spelled as TftpFileError spells it. */
type TftpFileCode = `TFTP_${UpperSnake<FileErrorReason>}`;

/** Codes thrown by the servers, the config readers and the CLI: a request never causes them, so a 500. */
type ServerSideCode =
  | TftpFileCode
  | 'TFTP_BAD_OPTION'
  | 'TFTP_BIND_FAILED'
  | 'TFTP_CLOSED'
  | 'DECODE_ERROR'
  | 'CONFIG_INVALID'
  | 'STARTUP_FAILED'
  | 'DHCP_BIND_FAILED'
  | 'DHCP_CLIENT_BIND'
  | 'DHCP_CONFIG_ERROR'
  | 'DHCP_ENCODE_ERROR'
  | 'DHCP_FOREIGN_SERVER'
  | 'DHCP_LEASE_FILE_INVALID'
  | 'EXPORTFS_FAILED'
  | 'EXPORTS_SYNTAX'
  | 'INVALID_EXPORT'
  | 'USAGE';

/** Every error code the project throws. */
export type ErrorCode = ApiOwnCode | ValidatorCode | FleetErrorCode | ServerSideCode;

/** The statuses the API answers errors with (each is described in the OpenAPI document). */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 431 | 500 | 503;

export const HTTP_STATUS_BY_CODE = {
  // The request is wrong: the message (and `field` for schema errors) says what to change.
  INVALID_REQUEST: 400,
  INVALID_SERIAL: 400,
  INVALID_MAC: 400,
  INVALID_NAME: 400,
  INVALID_OWNER: 400,
  INVALID_IP: 400,
  INVALID_CMDLINE: 400,
  INVALID_CONFIG_TXT: 400,
  BASE_INVALID: 400,
  BAD_REQUEST: 400,
  BAD_URL: 400,
  INVALID_JSON: 400,
  UNAUTHORIZED: 401,
  // The daemon runs unprivileged: the change needs sudo pxetools on the server.
  NOT_ROOT: 403,
  NOT_FOUND: 404,
  PI_NOT_FOUND: 404,
  BASE_NOT_FOUND: 404,
  // Conflicts with what exists.
  PI_EXISTS: 409,
  IP_TAKEN: 409,
  PI_BUSY: 409,
  PI_MOUNTED: 409,
  BASE_EXISTS: 409,
  BASE_IN_USE: 409,
  NOT_SET_UP: 409,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IMPORT_FAILED: 422,
  REQUEST_TOO_LARGE: 431,
  // Another process holds the registry lock: retry.
  LOCKED: 503,
  // The server failed; the request may well be right.
  INTERNAL: 500,
  COPY_FAILED: 500,
  DOCKER_DISK_FAILED: 500,
  REGISTRY_CORRUPT: 500,
  EXPORTFS_FAILED: 500,
  EXPORTS_SYNTAX: 500,
  INVALID_EXPORT: 500,
  DECODE_ERROR: 500,
  CONFIG_INVALID: 500,
  STARTUP_FAILED: 500,
  DHCP_BIND_FAILED: 500,
  DHCP_CLIENT_BIND: 500,
  DHCP_CONFIG_ERROR: 500,
  DHCP_ENCODE_ERROR: 500,
  DHCP_FOREIGN_SERVER: 500,
  DHCP_LEASE_FILE_INVALID: 500,
  TFTP_NOT_FOUND: 500,
  TFTP_ACCESS_DENIED: 500,
  TFTP_IO_ERROR: 500,
  TFTP_BAD_OPTION: 500,
  TFTP_BIND_FAILED: 500,
  TFTP_CLOSED: 500,
  USAGE: 500,
} as const satisfies Record<ErrorCode, ErrorStatus>;

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(HTTP_STATUS_BY_CODE, code);
}

/** HTTP status for an error: the table decides; an error without a known code is a 500. */
export function statusForError(error: unknown): ErrorStatus {
  if (!(error instanceof IotTofuError) || !isErrorCode(error.code)) return 500;
  return HTTP_STATUS_BY_CODE[error.code];
}

/** Answers with the status the table gives `code`, in the documented shape. */
export function sendError(reply: FastifyReply, code: ErrorCode, message: string, field?: string): FastifyReply {
  return reply.code(HTTP_STATUS_BY_CODE[code]).send({ error: { code, message, ...(field === undefined ? {} : { field }) } });
}

/** fastify's client errors under stable codes of ours: clients match on `code`, not on framework internals. */
const FRAMEWORK_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_BAD_URL: 'BAD_URL',
};

/**
 * A fastify client error in our shape: a mapped code takes its status from the table; any other
 * keeps fastify's 4xx under the code BAD_REQUEST.
 */
function sendFrameworkError(reply: FastifyReply, error: { code?: string; statusCode?: number; message: string }): FastifyReply {
  const code = error.code ? FRAMEWORK_CODES[error.code] : undefined;
  if (code) return sendError(reply, code, error.message);
  return reply.code(error.statusCode ?? 400).send({ error: { code: 'BAD_REQUEST', message: error.message } });
}

/** Errors Node's HTTP parser meets before fastify sees a request (a 100 kB URL, a bad header). */
const clientErrorHandler: NonNullable<FastifyServerOptions['clientErrorHandler']> = (error, socket) => {
  if (!socket.writable) return;
  const tooLarge = (error as NodeJS.ErrnoException).code === 'HPE_HEADER_OVERFLOW';
  const code: ErrorCode = tooLarge ? 'REQUEST_TOO_LARGE' : 'BAD_REQUEST';
  const body = JSON.stringify({ error: { code, message: tooLarge ? 'request line or headers too large' : 'malformed HTTP request' } });
  const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
  const head = [`HTTP/1.1 ${status}`, 'content-type: application/json; charset=utf-8', `content-length: ${Buffer.byteLength(body)}`];
  socket.end(`${head.join('\r\n')}\r\nconnection: close\r\n\r\n${body}`);
};

/** The fastify constructor options that keep errors met before routing in our shape. */
export const errorShapeServerOptions: Pick<FastifyServerOptions, 'frameworkErrors' | 'clientErrorHandler'> = {
  // A URL fastify cannot decode never reaches a route: answer it in our error shape too.
  frameworkErrors: (error, _request, reply) => void sendFrameworkError(reply as FastifyReply, error),
  clientErrorHandler,
};

/** Error and not-found handlers: every answer that is not a success has the documented shape. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) {
      const { field, message } = describeValidation(error.validation as ValidationIssue[]);
      const where = error.validationContext ?? 'request';
      return sendError(reply, 'INVALID_REQUEST', `${where}${field ? `.${field}` : ''}: ${message}`, field || where);
    }
    // fastify's own client errors: bad JSON, wrong content type, body too large.
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500 && !(error instanceof IotTofuError)) {
      return sendFrameworkError(reply, error);
    }
    const status = statusForError(error);
    if (status === 500) request.log.error({ err: error }, 'request failed');
    if (!(error instanceof IotTofuError)) return sendError(reply, 'INTERNAL', 'internal error');
    return reply.code(status).send({ error: { code: error.code, message: error.message } });
  });

  app.setNotFoundHandler((request, reply) => {
    sendError(reply, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
  });
}
