// Bearer-token check for every route that is not marked public.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { sendError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No bearer token needed (/healthz, /metrics, the web page). Set per route or with publicRoutes(). */
    public?: boolean;
  }
}

/** Compares digests, so the time taken says nothing about how much of the token matched. */
function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Every route needs the token unless its config says `public: true`. Deciding by the matched
 * route, not the raw URL, so an encoded path cannot slip past.
 */
export function requireBearerToken(app: FastifyInstance, token: string): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config.public === true) return;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (!match?.[1] || !sameToken(match[1], token)) {
      reply.header('www-authenticate', 'Bearer');
      return sendError(reply, 'UNAUTHORIZED', 'missing or wrong bearer token (see <stateDir>/api-token)');
    }
  });
}
