// Route modules other code adds to the API (the convention at the top of src/api/server.ts): public
// ones skip the token and stay out of the OpenAPI document, the rest need the token, and every error
// they raise comes back in the documented shape with the table's status. No root, no real fleet.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { FleetError } from '@iot-tofu/fleet';
import { buildApi, publicRoutes, type ApiRoutes, type FleetPort } from '../src/api.js';
import { EventBus } from '../src/events.js';
import { createMetrics } from '../src/metrics.js';

const TOKEN = 'route-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

function unused(): never {
  throw new Error('not used by these tests');
}

const fleet: FleetPort = {
  list: async () => [],
  get: async (serial) => {
    throw new FleetError('PI_NOT_FOUND', `Pi ${serial} is not registered`);
  },
  add: unused,
  remove: unused,
  timeline: async () => [],
  discovered: async () => [],
  bases: async () => [],
  setup: unused,
  removeBase: unused,
  reset: unused,
};

const page: ApiRoutes = (app) => {
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><title>fleet</title>'));
  app.get('/web/broken', async () => {
    throw new FleetError('LOCKED', 'registry locked');
  });
};

const extra: ApiRoutes = (app, options) => {
  const schema = { summary: 'An extra route', tags: ['extra'] };
  app.get('/api/v1/extra', { schema }, async () => ({ pis: (await options.fleet.list()).length }));
};

describe('API route modules', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    const bus = new EventBus();
    const metrics = createMetrics(bus, () => ({ tftp: { active: 0, queued: 0 } }), { defaultMetrics: false });
    app = await buildApi({ fleet, bus, metrics, token: TOKEN, routes: [publicRoutes(page), extra] });
    await app.ready();
  });
  afterAll(() => app.close());

  it('serves a public module without a token, and keeps it out of the OpenAPI document', async () => {
    const response = await app.inject({ url: '/' });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('<title>fleet</title>');
    const doc = (await app.inject({ url: '/api/v1/openapi.json', headers: auth })).json();
    expect(Object.keys(doc.paths)).not.toContain('/');
    expect(Object.keys(doc.paths)).toContain('/api/v1/extra');
  });

  it('asks for the token on an extra route that is not public, and on the core routes', async () => {
    for (const url of ['/api/v1/extra', '/api/v1/pis']) {
      const refused = await app.inject({ url });
      expect(refused.statusCode, url).toBe(401);
      expect(refused.json().error.code, url).toBe('UNAUTHORIZED');
    }
    expect((await app.inject({ url: '/api/v1/extra', headers: auth })).json()).toEqual({ pis: 0 });
  });

  it('answers errors of any module in the error shape, with the status from the table', async () => {
    const locked = await app.inject({ url: '/web/broken' });
    expect(locked.statusCode).toBe(503);
    expect(locked.json()).toEqual({ error: { code: 'LOCKED', message: 'registry locked' } });
    const unknown = await app.inject({ url: '/api/v1/pis/9f55bbfd', headers: auth });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('PI_NOT_FOUND');
    // A path no route matches is not public: without the token it is a 401, like any other.
    expect((await app.inject({ url: '/nothing-here' })).json().error.code).toBe('UNAUTHORIZED');
    const noRoute = await app.inject({ url: '/nothing-here', headers: auth });
    expect(noRoute.statusCode).toBe(404);
    expect(noRoute.json().error.code).toBe('NOT_FOUND');
  });

  it('keeps the shape for framework errors: a bad body, a wrong content type', async () => {
    const post = (contentType: string, payload: string) =>
      app.inject({ method: 'POST', url: '/api/v1/pis', headers: { ...auth, 'content-type': contentType }, payload });
    const badJson = await post('application/json', '{');
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().error.code).toBe('INVALID_JSON');
    const wrongType = await post('text/csv', 'a,b');
    expect(wrongType.statusCode).toBe(415);
    expect(wrongType.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});
