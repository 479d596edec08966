// The OpenAPI document: @fastify/swagger builds it from the route schemas fastify validates with,
// so it cannot drift from what the server does. Also the helpers routes use to document answers.
import fastifySwagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import type { ErrorStatus } from './errors.js';
import * as schemas from './schemas.js';

export const ERROR_DESCRIPTIONS: Readonly<Record<ErrorStatus, string>> = {
  400: 'Invalid request; error.field names the offending field',
  401: 'Missing or wrong bearer token',
  403: 'The daemon runs unprivileged (the installed service): make this change with sudo pxetools on the server',
  404: 'Unknown Pi or base',
  409: 'Conflicts with what exists (Pi or base already there, base still used by Pis, Pi busy)',
  413: 'Request body too large',
  415: 'Unsupported content type (send application/json)',
  422: 'The image or tarball could not be imported',
  431: 'Request line or headers too large',
  500: 'Internal error',
  503: 'The registry is locked by another process; retry',
};

type Documented<T> = T & { description: string };

function described<T extends object>(schema: T, description: string): Documented<T> {
  return { ...schema, description };
}

/**
 * A route's `response` schemas: the success answer, then the errors it can give (401 and 500 are
 * always possible), each in the error shape with its description.
 */
export function responses<T extends object>(
  success: { status: 200 | 201; schema: T; description: string },
  ...errors: ErrorStatus[]
): Record<number, Documented<T> | Documented<typeof schemas.error>> {
  const errorEntries = ([401, 500, ...errors] as const).map((status) => [status, described(schemas.error, ERROR_DESCRIPTIONS[status])]);
  return { [success.status]: described(success.schema, success.description), ...Object.fromEntries(errorEntries) };
}

export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'iot-tofu boot server', version, description: 'Fleet verbs with the same JSON as `pxetools --json`.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
}

/** GET /api/v1/openapi.json (behind the token, like the routes it describes). */
export function openApiRoutes(app: FastifyInstance): void {
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
