import { createHash, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { fastify, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import type { Logger } from 'pino';
import { IotTofuError } from '@iot-tofu/errors';
import { HTTP_STATUS_BY_CODE } from '@iot-tofu/fleet';
import { BOOT_EVENT_NAMES, type EventBus } from './events.js';
import type { BootMetrics } from './metrics.js';
import * as schemas from './api-schemas.js';
import type { FleetPort } from './fleet-port.js';

export interface ApiOptions {
  fleet: FleetPort;
  bus: EventBus;
  metrics: BootMetrics;
  /** The bearer token every /api/v1 request must carry. */
  token: string;
  logger?: Logger;
  /** Extra facts for /healthz (which servers run). */
  health?: () => Record<string, unknown>;
  /** nfsd and exports state for /healthz under `nfs` (the fleet's health()). */
  nfsHealth?: () => Promise<object>;
  /** Seconds between SSE keep-alive comments. */
  sseKeepAliveSeconds?: number;
  version?: string;
}

/** Bytes an event-stream client may fall behind before it is disconnected. */
const MAX_SSE_BUFFER = 1 << 20;

/** Error codes mapped to HTTP statuses: the fleet's table plus ours; anything else is a 500. */
const STATUS_BY_CODE: Readonly<Record<string, number>> = { ...HTTP_STATUS_BY_CODE, INVALID_REQUEST: 400 };

/** fastify's client errors under stable codes of ours: clients match on `code`, not on framework internals. */
const FRAMEWORK_CODES: Readonly<Record<string, string>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_BAD_URL: 'BAD_URL',
};

function frameworkCode(code: string | undefined): string {
  return (code && FRAMEWORK_CODES[code]) ?? 'BAD_REQUEST';
}

/** HTTP status for an error: the stable code decides, a `NOT_FOUND`/`INVALID` suffix is a good hint. */
export function statusForError(error: unknown): number {
  if (!(error instanceof IotTofuError)) return 500;
  const known = STATUS_BY_CODE[error.code];
  if (known) return known;
  if (/NOT_FOUND|UNKNOWN/.test(error.code)) return 404;
  if (/EXISTS|CONFLICT/.test(error.code)) return 409;
  if (/^INVALID|_INVALID$|MISSING/.test(error.code)) return 400;
  return 500;
}

const ERROR_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: 'Invalid request; error.field names the offending field',
  401: 'Missing or wrong bearer token',
  403: 'The daemon runs unprivileged (the installed service): make this change with sudo pxetools on the server',
  404: 'Unknown Pi or base',
  409: 'Conflicts with what exists (Pi or base already there, base still used by Pis, Pi busy)',
  422: 'The image or tarball could not be imported',
  500: 'Internal error',
  503: 'The registry is locked by another process; retry',
};

function described<T extends object>(schema: T, description: string): T & { description: string } {
  return { ...schema, description };
}

/** The error answers a route can give, documented in the OpenAPI document. */
function errorResponses(...statuses: number[]): Record<number, typeof schemas.error & { description: string }> {
  return Object.fromEntries([401, 500, ...statuses].map((status) => [status, { ...schemas.error, description: ERROR_DESCRIPTIONS[status] ?? 'Error' }]));
}

/** `body/serial must match pattern` → the field name a client can act on. */
export function validationField(error: { instancePath?: string; params?: Record<string, unknown> }): string {
  const path = (error.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  const extra = error.params?.missingProperty ?? error.params?.additionalProperty;
  if (typeof extra === 'string') return path ? `${path}.${extra}` : extra;
  return path;
}

interface ValidationIssue {
  keyword: string;
  instancePath?: string;
  schemaPath?: string;
  params?: Record<string, unknown>;
  message?: string;
}

/**
 * Picks the error a client can act on from ajv's list (allErrors): an unknown field first, then a
 * plain field error, and for "one of these sources" rules the alternatives spelled out.
 */
export function describeValidation(issues: readonly ValidationIssue[]): { field: string; message: string } {
  const unknownField = issues.find((i) => i.keyword === 'additionalProperties');
  if (unknownField) return { field: validationField(unknownField), message: 'unknown field' };
  const direct = issues.find((i) => i.keyword !== 'oneOf' && !(i.schemaPath ?? '').includes('/oneOf/'));
  if (direct) return { field: validationField(direct), message: direct.message ?? 'invalid' };
  const branches = new Map<string, string[]>();
  for (const issue of issues) {
    const branch = /\/oneOf\/(\d+)\/required$/.exec(issue.schemaPath ?? '')?.[1];
    const missing = issue.params?.missingProperty;
    if (branch !== undefined && typeof missing === 'string') branches.set(branch, [...(branches.get(branch) ?? []), missing]);
  }
  const oneOf = issues.find((i) => i.keyword === 'oneOf');
  if (branches.size > 0 && oneOf) {
    const path = validationField({ instancePath: oneOf.instancePath ?? '' });
    const choices = [...branches.values()].map((fields) => fields.join(' + '));
    return { field: path || [...new Set([...branches.values()].flat())].join('|'), message: `give exactly one of: ${choices.join(', or ')}` };
  }
  const first = issues[0];
  return { field: first ? validationField(first) : '', message: first?.message ?? 'invalid' };
}

function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The HTTP API (`/api/v1`, JSON, bearer token), `/metrics` and `/healthz`, built on fastify with
 * JSON-schema validation and an OpenAPI document generated from the same route schemas.
 * Returns the fastify instance, not yet listening.
 */
export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const app = fastify({
    // Request lines are logged at info; the daemon hands in a logger that shows them only at debug.
    loggerInstance: options.logger as FastifyBaseLogger | undefined,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: true } },
    bodyLimit: 64 * 1024,
    // A URL fastify cannot decode never reaches a route: answer it in our error shape too.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(400).send({ error: { code: frameworkCode(error.code), message: error.message } });
    },
    // Errors Node's HTTP parser meets before fastify sees a request (a 100 kB URL, a bad header).
    clientErrorHandler: (error, socket) => {
      if (!socket.writable) return;
      const tooLarge = (error as NodeJS.ErrnoException).code === 'HPE_HEADER_OVERFLOW';
      const body = JSON.stringify({ error: { code: tooLarge ? 'REQUEST_TOO_LARGE' : 'BAD_REQUEST', message: tooLarge ? 'request line or headers too large' : 'malformed HTTP request' } });
      const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    },
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'iot-tofu boot server', version: options.version ?? '0.1.0', description: 'Fleet verbs with the same JSON as `pxetools --json`.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  // Every route needs the token unless it says it is public (/metrics, /healthz). Deciding by the
  // matched route, not the raw URL, so an encoded path cannot slip past.
  app.addHook('onRequest', async (request, reply) => {
    if ((request.routeOptions.config as { public?: boolean } | undefined)?.public === true) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1] || !sameToken(match[1], options.token)) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'missing or wrong bearer token (see <stateDir>/api-token)' } });
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) {
      const { field, message } = describeValidation(error.validation as ValidationIssue[]);
      const where = error.validationContext ?? 'request';
      return reply.code(400).send({
        error: { code: 'INVALID_REQUEST', message: `${where}${field ? `.${field}` : ''}: ${message}`, field: field || where },
      });
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      // fastify's own client errors: bad JSON, wrong content type, body too large.
      return reply.code(error.statusCode).send({ error: { code: frameworkCode(error.code), message: error.message } });
    }
    const status = statusForError(error);
    if (status === 500) request.log.error({ err: error }, 'request failed');
    const code = error instanceof IotTofuError ? error.code : 'INTERNAL';
    const message = status === 500 && !(error instanceof IotTofuError) ? 'internal error' : error.message;
    return reply.code(status).send({ error: { code, message } });
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } });
  });

  const { fleet } = options;

  app.get('/healthz', { schema: { hide: true }, config: { public: true } }, async () => ({
    status: 'ok',
    ...(options.health?.() ?? {}),
    ...(options.nfsHealth ? { nfs: await options.nfsHealth() } : {}),
  }));
  app.get('/metrics', { schema: { hide: true }, config: { public: true } }, async (_request, reply) => {
    reply.header('content-type', options.metrics.contentType);
    return options.metrics.render();
  });

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get('/api/v1/pis', { schema: { summary: 'List registered Pis (pxetools --list --json)', tags: ['pis'], response: { 200: described(schemas.piList, 'Registered Pis, sorted by serial'), ...errorResponses() } } }, async () => fleet.list());

  app.post<{ Body: schemas.AddPiBody }>(
    '/api/v1/pis',
    { schema: { summary: 'Register a Pi (pxetools --add)', tags: ['pis'], body: schemas.addPiBody, response: { 201: described(schemas.pi, 'The Pi (same JSON as pxetools --json)'), ...errorResponses(400, 403, 404, 409, 422, 503) } } },
    async (request, reply) => {
      const pi = await fleet.add(request.body);
      return reply.code(201).send(pi);
    },
  );

  app.get<{ Params: { serial: string } }>(
    '/api/v1/pis/:serial',
    { schema: { summary: 'One registered Pi', tags: ['pis'], params: schemas.serialParams, response: { 200: described(schemas.pi, 'The Pi (same JSON as pxetools --json)'), ...errorResponses(400, 404) } } },
    async (request) => fleet.get(request.params.serial),
  );

  app.delete<{ Params: { serial: string } }>(
    '/api/v1/pis/:serial',
    { schema: { summary: 'Remove a Pi (pxetools --remove)', tags: ['pis'], params: schemas.serialParams, response: { 200: described(schemas.removed, 'Removed (removed=false: nothing was there)'), ...errorResponses(400, 403, 409, 503) } } },
    async (request) => fleet.remove(request.params.serial),
  );

  app.get<{ Params: { serial: string } }>(
    '/api/v1/pis/:serial/timeline',
    { schema: { summary: "A Pi's boot timeline, oldest first", tags: ['pis'], params: schemas.serialParams, response: { 200: described(schemas.timeline, 'Boot timeline, oldest first'), ...errorResponses(400, 404) } } },
    async (request) => fleet.timeline(request.params.serial),
  );

  app.get('/api/v1/discovered', { schema: { summary: 'Pis seen on the wire but not registered', tags: ['pis'], response: { 200: described(schemas.discoveredList, 'Pis seen on the network but not registered'), ...errorResponses() } } }, async () => fleet.discovered());

  app.get('/api/v1/bases', { schema: { summary: 'Base images available for new Pis', tags: ['bases'], response: { 200: described(schemas.baseList, 'Bases'), ...errorResponses() } } }, async () => fleet.bases());

  app.delete<{ Params: { name: string } }>(
    '/api/v1/bases/:name',
    { schema: { summary: 'Remove a base (pxetools remove-base); refused while Pis use it', tags: ['bases'], params: schemas.baseParams, response: { 200: described(schemas.baseRemoved, 'Removed (removed=false: no such base)'), ...errorResponses(400, 403, 409, 503) } } },
    async (request) => fleet.removeBase(request.params.name),
  );

  app.post<{ Body: schemas.SetupBody }>(
    '/api/v1/setup',
    { schema: { summary: 'Create a base from an image, tarballs or folders (pxetools setup)', tags: ['bases'], body: schemas.setupBody, response: { 201: described(schemas.base, 'The imported base'), ...errorResponses(400, 403, 404, 409, 422, 503) } } },
    async (request, reply) => reply.code(201).send(await fleet.setup(request.body)),
  );

  app.post<{ Body: schemas.ResetBody }>(
    '/api/v1/reset',
    { schema: { summary: 'Remove every Pi, base and export: back to before setup (pxetools reset --yes)', tags: ['bases'], body: schemas.resetBody, response: { 200: described(schemas.resetResult, 'What was removed'), ...errorResponses(400, 403, 409, 503) } } },
    async (request) => fleet.reset(request.body),
  );

  const streams = new Set<ServerResponse>();
  app.get(
    '/api/v1/events',
    {
      schema: {
        summary: `Live event stream (server-sent events: ${BOOT_EVENT_NAMES.join(', ')})`,
        tags: ['events'],
        response: {
          200: { description: 'One `event: <name>` + `data: <JSON>` block per event, `: keep-alive` comments in between', content: { 'text/event-stream': { schema: { type: 'string' } } } },
          401: { description: ERROR_DESCRIPTIONS[401], content: { 'application/json': { schema: schemas.error } } },
        },
      },
    },
    (request, reply) => {
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      raw.write(': iot-tofu events\n\n');
      streams.add(raw);
      const off = options.bus.onAny((name, event) => {
        // A subscriber that stopped reading must not make the daemon buffer without end.
        if (raw.writableLength > MAX_SSE_BUFFER) {
          raw.destroy();
          return;
        }
        raw.write(`event: ${name}\ndata: ${JSON.stringify(event)}\n\n`);
      });
      const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), (options.sseKeepAliveSeconds ?? 15) * 1000);
      keepAlive.unref();
      const done = () => {
        off();
        clearInterval(keepAlive);
        streams.delete(raw);
      };
      // The socket closing is the one signal that covers client aborts, resets and server shutdown.
      request.raw.socket.once('close', done);
      raw.once('close', done);
    },
  );
  // Event streams never go idle, so end them before fastify waits for open connections.
  app.addHook('preClose', async () => {
    for (const raw of streams) raw.end();
    streams.clear();
  });

  return app;
}
