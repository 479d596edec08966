import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendError } from '../api/errors.js';
import { ASSET_PREFIX, loadWebAssets, type WebAsset, type WebAssets } from './assets.js';

/**
 * The page may load its own scripts, styles and icon and talk to its own origin, nothing else: no
 * inline code, no framing, no form posts elsewhere. The token is in sessionStorage, read by our
 * script only; a strict policy is what keeps injected markup from reaching it.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** The page is revalidated on each visit (small, and names the current asset folder); assets never change under their URL. */
const PAGE_CACHE = 'no-cache';
const ASSET_CACHE = 'public, max-age=31536000, immutable';

function acceptsGzip(request: FastifyRequest): boolean {
  return /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
}

function send(request: FastifyRequest, reply: FastifyReply, asset: WebAsset, cacheControl: string): FastifyReply {
  reply.headers({ ...SECURITY_HEADERS, 'cache-control': cacheControl, etag: asset.etag, vary: 'accept-encoding' });
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  reply.header('content-type', asset.contentType);
  if (asset.gzip && acceptsGzip(request)) return reply.header('content-encoding', 'gzip').send(asset.gzip);
  return reply.send(asset.body);
}

/**
 * The fleet page on the API's server: GET / and /web/ (the page), /web/<version>/<file> (its
 * assets). Public routes by design: they hold no data, every fact comes from /api/v1 with the token.
 */
export function registerWebPage(app: FastifyInstance, assets: WebAssets): void {
  const options = { schema: { hide: true }, config: { public: true } };
  const page = (request: FastifyRequest, reply: FastifyReply) => send(request, reply, assets.page, PAGE_CACHE);
  app.get('/', options, page);
  app.get(`${ASSET_PREFIX}/`, options, page);
  app.get<{ Params: { version: string; file: string } }>(`${ASSET_PREFIX}/:version/:file`, options, (request, reply) => {
    const file = assets.files.get(request.params.file);
    // An old version's URL (a tab open across an upgrade) gets a 404: the page reloads with the new one.
    if (!file || request.params.version !== assets.version) {
      return sendError(reply.headers(SECURITY_HEADERS), 'NOT_FOUND', `no asset ${request.url.split('?')[0]}`);
    }
    return send(request, reply, file, ASSET_CACHE);
  });
}

/** The page as an API route module (see api/server.ts): `routes: [publicRoutes(webRoutes())]`. Reads the files now. */
export function webRoutes(assets: WebAssets = loadWebAssets()): (app: FastifyInstance) => void {
  return (app) => registerWebPage(app, assets);
}
