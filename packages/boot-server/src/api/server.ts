/**
 * The HTTP API (`/api/v1`, JSON, bearer token), `/metrics` and `/healthz` on one fastify app, with
 * JSON-schema validation and an OpenAPI document generated from the same route schemas.
 *
 * Adding routes (the convention):
 * - A route module is an `ApiRoutes` function `(app, options) => void` (./types.ts); it declares its routes on
 *   `app` with fastify's `app.get(...)` etc. The core modules live in ./routes/ and are listed in
 *   CORE_ROUTES below; another module (the web page, say) hands its own in through `ApiOptions.routes`,
 *   and they are added after the core ones, on the same app and port.
 * - Every route needs `Authorization: Bearer <token>` unless its config says `public: true`
 *   (`app.get('/x', { config: { public: true } }, ...)`). To make a whole module public (an HTML page
 *   and its assets), wrap it: `routes: [publicRoutes(webRoutes)]`; its routes also stay out of the
 *   OpenAPI document. The check goes by the matched route, so an encoded URL cannot skip it.
 * - Errors: throw an IotTofuError with a code from the table in ./errors.ts (a new code gets a row
 *   there); the error handler answers `{"error":{code,message}}` with the table's status. To answer
 *   an error without throwing, `sendError(reply, code, message)` gives the same shape and status.
 *   Routes that answer something else than JSON (pages, assets) still get JSON errors.
 * - Under `/api/v1` every route has a `schema` (body, params, `responses(...)` from ./openapi.ts):
 *   fastify validates with it and the OpenAPI document is made from it.
 */
import { fastify, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { requireBearerToken } from './auth.js';
import { errorShapeServerOptions, installErrorHandlers } from './errors.js';
import { openApiRoutes, registerOpenApi } from './openapi.js';
import { baseRoutes } from './routes/bases.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { piRoutes } from './routes/pis.js';
import type { ApiOptions, ApiRoutes } from './types.js';

export type { ApiOptions, ApiRoutes } from './types.js';

const CORE_ROUTES: readonly ApiRoutes[] = [healthRoutes, openApiRoutes, piRoutes, baseRoutes, eventRoutes];

/**
 * A route module whose every route is public (no token) and hidden from the OpenAPI document:
 * for pages and static assets. It runs in its own fastify scope, so the marking stays inside it.
 */
export function publicRoutes(routes: ApiRoutes): ApiRoutes {
  return async (app, options) => {
    await app.register(async (scope) => {
      scope.addHook('onRoute', (route) => {
        route.config = { ...route.config, public: true };
        route.schema = { ...route.schema, hide: true };
      });
      await routes(scope, options);
    });
  };
}

/** Builds the app with every route module added; the caller listens (and closes). */
export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const app = fastify({
    // Request lines are logged at info; the daemon hands in a logger that shows them only at debug.
    loggerInstance: options.logger as FastifyBaseLogger | undefined,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: true } },
    bodyLimit: 64 * 1024,
    ...errorShapeServerOptions,
  });
  await registerOpenApi(app, options.version ?? '0.1.0');
  requireBearerToken(app, options.token);
  installErrorHandlers(app);
  for (const routes of [...CORE_ROUTES, ...(options.routes ?? [])]) await routes(app, options);
  return app;
}
