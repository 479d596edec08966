import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { Fleet } from '@iot-tofu/fleet';
import { buildApi, fleetPort } from '../src/api.js';
import { EventBus } from '../src/events.js';
import { createMetrics } from '../src/metrics.js';
import { needs } from '@iot-tofu/test-kit';
import { fleetFixture, withoutExportfs, type FleetFixture } from './fleet-fixture.js';

const TOKEN = 'test-token-0123456789abcdef';

describe('HTTP API', () => {
  let app: FastifyInstance;
  let base: string;
  let fixture: FleetFixture;
  let fleet: Fleet;
  const bus = new EventBus();
  const auth = { authorization: `Bearer ${TOKEN}` };

  beforeAll(async () => {
    fixture = fleetFixture();
    fleet = await Fleet.open({
      tftpRoot: fixture.tftpRoot,
      nfsRoot: fixture.nfsRoot,
      stateDir: fixture.stateDir,
      exportsFile: fixture.exportsFile,
      exportsClients: '127.0.0.0/8',
      serverIp: '127.0.0.1',
      runner: withoutExportfs,
      isRoot: () => true,
    });
    const metrics = createMetrics(bus, () => ({ tftp: { active: 2, queued: 1 } }), { defaultMetrics: false });
    const health = () => ({ dhcp: false, tftp: true });
    app = await buildApi({ fleet: fleetPort(fleet), bus, metrics, token: TOKEN, health, nfsHealth: () => fleet.health() });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await fleet?.close();
    fixture?.close();
  });

  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = auth) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    const json = text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined;
    return { status: response.status, headers: response.headers, text, json };
  };

  /** A plain HTTP/1.1 request (fetch would refuse some of these before sending). */
  const rawRequest = (request: { method: string; path: string; body?: Buffer }): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const url = new URL(base);
      const length = request.body ? { 'content-length': request.body.length } : {};
      const headers = { ...auth, 'content-type': 'application/json', ...length };
      const req = http.request({ host: url.hostname, port: url.port, method: request.method, path: request.path, headers }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(request.body);
    });

  describe('auth', () => {
    it.each([
      ['GET', '/api/v1/pis'],
      ['POST', '/api/v1/pis'],
      ['DELETE', '/api/v1/pis/9f55bbfd'],
      ['GET', '/api/v1/events'],
      ['GET', '/api/v1/openapi.json'],
      ['GET', '/api/v1/no-such-route'],
      ['GET', '/%61pi/v1/pis'],
      ['GET', '/api/v1/pis/../pis'],
      ['GET', '/API/v1/pis'],
    ])('refuses %s %s without the token', async (method, path) => {
      const response = await call(method, path, undefined, {});
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      expect(response.json.error.code).toBe('UNAUTHORIZED');
    });
    it.each([`Bearer ${TOKEN}x`, `Basic ${TOKEN}`, TOKEN, 'Bearer '])('refuses %j', async (header) => {
      expect((await call('GET', '/api/v1/pis', undefined, { authorization: header })).status).toBe(401);
    });
    it('serves /metrics and /healthz without a token', async () => {
      const health = await call('GET', '/healthz', undefined, {});
      expect(health.status).toBe(200);
      expect(health.json).toEqual({
        status: 'ok',
        dhcp: false,
        tftp: true,
        nfs: expect.objectContaining({
          nfsdRunning: expect.any(Boolean),
          exported: expect.any(Array),
          exportsFile: fixture.exportsFile,
          exportsClients: '127.0.0.0/8',
        }),
      });
      const metrics = await call('GET', '/metrics', undefined, {});
      expect(metrics.status).toBe(200);
      expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(metrics.text).toMatch(/^iot_tofu_tftp_active_transfers 2$/m);
      expect(metrics.text).toMatch(/^iot_tofu_tftp_queued_transfers 1$/m);
    });
  });

  // root: the verbs chown what they write to root (see VERB_NEEDS in packages/fleet/test/helpers.ts).
  describe('fleet verbs (real Fleet on temp folders)', needs('root'), () => {
    it('sets up a base, adds, lists, gets, shows the timeline of and removes a Pi', async () => {
      const setup = await call('POST', '/api/v1/setup', { base: 'bookworm', bootDir: fixture.bootDir, rootfsDir: fixture.rootfsDir });
      expect(setup.status, setup.text).toBe(201);
      expect(setup.json).toMatchObject({ name: 'bookworm', default: true, layout: 'legacy' });
      expect((await call('GET', '/api/v1/bases')).json).toEqual([setup.json]);
      const sameBase = await call('POST', '/api/v1/setup', { base: 'bookworm', bootDir: fixture.bootDir, rootfsDir: fixture.rootfsDir });
      expect(sameBase.json.error.code).toBe('BASE_EXISTS');

      const kitchen = { serial: '9F55BBFD', owner: 'jo', name: 'kitchen', mac: 'DC:A6:32:01:36:C2', base: 'bookworm' };
      const added = await call('POST', '/api/v1/pis', kitchen);
      expect(added.status, added.text).toBe(201);
      expect(added.json).toMatchObject({
        serial: '9f55bbfd',
        owner: 'jo',
        name: 'kitchen',
        mac: 'dc:a6:32:01:36:c2',
        macSource: 'configured',
        base: 'bookworm',
        ip: null,
      });
      expect(added.json).toEqual(fleet.get('9f55bbfd'));
      expect((await call('GET', '/api/v1/pis')).json).toEqual([added.json]);
      expect((await call('GET', '/api/v1/pis/9F55BBFD')).json).toEqual(added.json);

      fleet.recordTimeline('9f55bbfd', { type: 'pi-seen', mac: 'dc:a6:32:01:36:c2', at: 1000 });
      const timeline = await call('GET', '/api/v1/pis/9f55bbfd/timeline');
      expect(timeline.status).toBe(200);
      expect(timeline.json).toEqual([{ type: 'pi-seen', mac: 'dc:a6:32:01:36:c2', at: new Date(1000).toISOString() }]);

      const again = await call('POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo', name: 'kitchen', base: 'bookworm' });
      expect(again.status).toBe(409);
      expect(again.json.error.code).toBe('PI_EXISTS');
      const removed = await call('DELETE', '/api/v1/pis/9f55bbfd');
      expect(removed.status).toBe(200);
      expect(removed.json).toEqual({ serial: '9f55bbfd', removed: true });
      const gone = await call('GET', '/api/v1/pis/9f55bbfd');
      expect(gone.status).toBe(404);
      expect(gone.json.error.code).toBe('PI_NOT_FOUND');
      expect((await call('DELETE', '/api/v1/pis/9f55bbfd')).json).toEqual({ serial: '9f55bbfd', removed: false });
      expect((await call('GET', '/api/v1/pis/0badf00d/timeline')).status).toBe(404);
    });

    it('lists discovered Pis from learned facts', async () => {
      fleet.recordSeen({ serial: 'deadbeef', mac: 'dc:a6:32:00:00:02', model: 'pi4', at: 5000 });
      const discovered = await call('GET', '/api/v1/discovered');
      const seenAt = new Date(5000).toISOString();
      expect(discovered.json).toEqual([
        { serial: 'deadbeef', mac: 'dc:a6:32:00:00:02', ip: null, model: 'pi4', firstSeen: seenAt, lastSeen: seenAt },
      ]);
    });

    it('answers an unknown base with 404 and a missing setup source folder with an error', async () => {
      const missingBase = await call('POST', '/api/v1/pis', { serial: '0a1b2c3d', owner: 'jo', name: 'desk', base: 'nope' });
      expect(missingBase.status).toBe(404);
      expect(missingBase.json.error.code).toBe('BASE_NOT_FOUND');
      const missingFolders = { base: 'other', bootDir: '/nonexistent/boot', rootfsDir: '/nonexistent/root' };
      const badSource = await call('POST', '/api/v1/setup', missingFolders);
      expect(badSource.status).toBeGreaterThanOrEqual(400);
      expect(badSource.json.error.message).toMatch(/nonexistent/);
    });

    it('removes a base with DELETE /api/v1/bases/{name}: refused while a Pi uses it, idempotent', async () => {
      const spare = { base: 'spare', bootDir: fixture.bootDir, rootfsDir: fixture.rootfsDir, makeDefault: false };
      expect((await call('POST', '/api/v1/setup', spare)).status).toBe(201);
      expect((await call('POST', '/api/v1/pis', { serial: '0c1b2c3d', owner: 'jo', name: 'spare-user', base: 'spare' })).status).toBe(201);
      const inUse = await call('DELETE', '/api/v1/bases/spare');
      expect(inUse.status).toBe(409);
      expect(inUse.json.error).toMatchObject({ code: 'BASE_IN_USE', message: expect.stringContaining('0c1b2c3d') });
      expect((await call('DELETE', '/api/v1/pis/0c1b2c3d')).status).toBe(200);
      const removed = await call('DELETE', '/api/v1/bases/spare');
      expect(removed.status, removed.text).toBe(200);
      expect(removed.json).toEqual({ name: 'spare', removed: true });
      expect((await call('GET', '/api/v1/bases')).json.map((b: { name: string }) => b.name)).toEqual(['bookworm']);
      expect((await call('DELETE', '/api/v1/bases/spare')).json).toEqual({ name: 'spare', removed: false });
    });

    it('reset needs the confirmation and then removes everything', async () => {
      const noBase = await call('POST', '/api/v1/pis', { serial: '0a1b2c3d', owner: 'jo', name: 'desk' });
      expect(noBase.status).toBe(400);
      expect(noBase.json.error.message).toMatch(/base is required/);
      expect((await call('POST', '/api/v1/pis', { serial: '0a1b2c3d', owner: 'jo', name: 'desk', ownFilesystem: true })).status).toBe(201);
      expect((await call('POST', '/api/v1/reset', {})).json.error.field).toBe('yes');
      expect((await call('POST', '/api/v1/reset', { yes: false })).status).toBe(400);
      const reset = await call('POST', '/api/v1/reset', { yes: true });
      expect(reset.status, reset.text).toBe(200);
      expect(reset.json).toEqual({ removed: ['0a1b2c3d'], bases: ['bookworm'] });
      expect((await call('GET', '/api/v1/pis')).json).toEqual([]);
      expect((await call('GET', '/api/v1/bases')).json).toEqual([]);
    });
  });

  describe('bad input names the field', () => {
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/api/v1/pis', { owner: 'jo', name: 'a' }, 'serial'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', name: 'a' }, 'owner'],
      ['POST', '/api/v1/pis', { serial: 'xyz', owner: 'jo', name: 'a' }, 'serial'],
      ['POST', '/api/v1/pis', { serial: 12345678, owner: 'jo', name: 'a' }, 'serial'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo', name: 'bad name!' }, 'name'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo', name: 'a', mac: 'not-a-mac' }, 'mac'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo', name: 'a', colour: 'red' }, 'colour'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo; rm -rf /', name: 'a' }, 'owner'],
      // The same rules as the CLI (issue 19 item 6): control characters, 65 characters, a newline after the serial.
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo\tsmith', name: 'a' }, 'owner'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo\u001b[31m', name: 'a' }, 'owner'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'x'.repeat(65), name: 'a' }, 'owner'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd\n', owner: 'jo', name: 'a' }, 'serial'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo', name: 'a', mac: 'dc:a6:32:1:36:c2' }, 'mac'],
      ['POST', '/api/v1/pis', { serial: '9f55bbfd', owner: 'jo', name: 'a', ip: '10.77.0.256' }, 'ip'],
      ['GET', '/api/v1/pis/nope', undefined, 'serial'],
      ['DELETE', '/api/v1/pis/..%2Fetc', undefined, 'serial'],
      ['GET', '/api/v1/pis/nope/timeline', undefined, 'serial'],
      ['POST', '/api/v1/setup', { image: '/x.img' }, 'base'],
      ['POST', '/api/v1/setup', { base: '../x', image: '/x.img' }, 'base'],
      ['POST', '/api/v1/setup', { base: 'b', image: 'relative.img' }, 'image'],
      ['POST', '/api/v1/reset', { yes: true, colour: 1 }, 'colour'],
      ['POST', '/api/v1/reset', { yes: 'yes' }, 'yes'],
      ['DELETE', '/api/v1/bases/..%2Fetc', undefined, 'name'],
      ['DELETE', '/api/v1/bases/-dash', undefined, 'name'],
    ];
    it.each(cases)('%s %s %j → 400 naming %s', async (method, path, body, field) => {
      const response = await call(method, path, body);
      expect(response.status).toBe(400);
      expect(response.json.error.code).toBe('INVALID_REQUEST');
      expect(response.json.error.field).toBe(field);
      expect(response.json.error.message).toContain(field);
    });
    it('rejects a setup with two sources or none', async () => {
      const twoSources = { base: 'b', image: '/a.img', bootDir: '/b', rootfsDir: '/r' };
      const wrongSources = [{ base: 'b' }, twoSources, { base: 'b', bootTarball: '/b.tar' }];
      for (const body of wrongSources) {
        const response = await call('POST', '/api/v1/setup', body);
        expect(response.status).toBe(400);
      }
    });
    it('framework errors use the documented error shape too', async () => {
      const badEncoding = await call('GET', '/api/v1/pis/%E0%A4%A');
      expect(badEncoding.status).toBe(400);
      expect(badEncoding.json.error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
      const long = await rawRequest({ method: 'GET', path: `/api/v1/pis/${'a'.repeat(100_000)}` });
      expect(long.status).toBeGreaterThanOrEqual(400);
      expect(JSON.parse(long.body).error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    });
    it('a 20 MB body gets its 413 in the error shape, not a connection reset', async () => {
      for (let i = 0; i < 3; i++) {
        const big = await rawRequest({ method: 'POST', path: '/api/v1/pis', body: Buffer.alloc(20 * 1024 * 1024, 0x20) });
        expect(big.status).toBe(413);
        expect(JSON.parse(big.body).error.code).toBe('BODY_TOO_LARGE');
      }
    });
    it('rejects malformed JSON with a clear 400', async () => {
      const response = await call('POST', '/api/v1/pis', '{"serial":');
      expect(response.status).toBe(400);
      expect(response.json.error.message).toMatch(/JSON/i);
    });
    it('answers unknown routes with 404 JSON', async () => {
      const response = await call('GET', '/api/v1/nothing');
      expect(response.status).toBe(404);
      expect(response.json.error.code).toBe('NOT_FOUND');
    });
  });

  describe('server-sent events', () => {
    it('streams bus events to a subscriber and unsubscribes when the client goes away', async () => {
      const { port } = new URL(base);
      const baseline = bus.listenerCount('pi-seen'); // metrics listen too
      const request = http.get({ host: '127.0.0.1', port: Number(port), path: '/api/v1/events', headers: auth });
      const response = await new Promise<http.IncomingMessage>((resolve) => request.once('response', resolve));
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe('text/event-stream');
      response.setEncoding('utf8');
      let text = '';
      const until = (pattern: RegExp) =>
        new Promise<void>((resolve) => {
          const onData = (chunk: string) => {
            text += chunk;
            if (!pattern.test(text)) return;
            response.off('data', onData);
            resolve();
          };
          response.on('data', onData);
          onData(''); // the text already read may match
        });
      await until(/iot-tofu events/);
      const seen = { serial: '9f55bbfd', mac: 'dc:a6:32:01:36:c2', model: 'pi4', answered: true, at: 1 } as const;
      const served = { serial: '9f55bbfd', clientIp: '10.0.0.9', file: '9f55bbfd/start4.elf', bytes: 10, ms: 2, retries: 0, at: 2 };
      bus.emit('pi-seen', seen);
      bus.emit('file-served', served);
      await until(/event: file-served\ndata: .*\n\n/);
      const events = text
        .split('\n\n')
        .filter((b) => b.startsWith('event: '))
        .map((b) => ({ name: b.split('\n')[0], data: JSON.parse(b.split('data: ')[1]!) }));
      expect(events).toEqual([
        { name: 'event: pi-seen', data: seen },
        { name: 'event: file-served', data: served },
      ]);
      expect(bus.listenerCount('pi-seen')).toBe(baseline + 1);
      request.destroy();
      await expect.poll(() => bus.listenerCount('pi-seen')).toBe(baseline);
    });
  });

  describe('server-sent events, slow subscriber', () => {
    it('disconnects a subscriber that stopped reading instead of buffering without end', async () => {
      const { port } = new URL(base);
      const baseline = bus.listenerCount('file-served');
      const request = http.get({ host: '127.0.0.1', port: Number(port), path: '/api/v1/events', headers: auth });
      const response = await new Promise<http.IncomingMessage>((resolve) => request.once('response', resolve));
      response.pause(); // never reads again
      expect(bus.listenerCount('file-served')).toBe(baseline + 1);
      const file = 'x'.repeat(1000);
      for (let i = 0; i < 20_000 && bus.listenerCount('file-served') > baseline; i++) {
        bus.emit('file-served', { clientIp: '10.0.0.9', file, bytes: i, ms: 1, retries: 0, at: i });
      }
      await expect.poll(() => bus.listenerCount('file-served')).toBe(baseline);
      request.destroy();
    });
  });

  describe('OpenAPI document', () => {
    it('describes every route and matches live responses', async () => {
      const doc = (await call('GET', '/api/v1/openapi.json')).json;
      expect(doc.openapi).toBe('3.0.3');
      expect(doc.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
      const paths = Object.keys(doc.paths).sort();
      const bases = ['/api/v1/bases', '/api/v1/bases/{name}', '/api/v1/reset', '/api/v1/setup'];
      const pis = ['/api/v1/discovered', '/api/v1/pis', '/api/v1/pis/{serial}', '/api/v1/pis/{serial}/timeline'];
      expect(paths).toEqual([...bases, ...pis, '/api/v1/events'].sort());

      const ajv = new Ajv({ strict: false, allErrors: true });
      const check = async (method: string, path: string, template: string, body?: unknown) => {
        const live = await call(method, path, body);
        const operation = doc.paths[template][method.toLowerCase()];
        expect(operation, `${method} ${template} documented`).toBeDefined();
        const documented = operation.responses[String(live.status)];
        expect(documented, `${method} ${template} documents status ${live.status}`).toBeDefined();
        const schema = documented.content?.['application/json']?.schema;
        expect(schema, `${method} ${template} ${live.status} has a JSON schema`).toBeDefined();
        const validate = ajv.compile(schema);
        expect(validate(live.json), `${method} ${path} → ${live.status}: ${ajv.errorsText(validate.errors)}`).toBe(true);
        if (body !== undefined) {
          const requestSchema = operation.requestBody.content['application/json'].schema;
          // A body the documented schema rejects must be refused by the server too.
          if (!ajv.validate(requestSchema, body)) expect(live.status).toBe(400);
          if (live.status < 300) expect(ajv.validate(requestSchema, body)).toBe(true);
        }
      };
      await check('POST', '/api/v1/setup', '/api/v1/setup', { base: 'b2', bootDir: fixture.bootDir, rootfsDir: fixture.rootfsDir });
      await check('POST', '/api/v1/setup', '/api/v1/setup', { base: 'b2', bootDir: fixture.bootDir, rootfsDir: fixture.rootfsDir });
      await check('POST', '/api/v1/pis', '/api/v1/pis', { serial: '0a1b2c3d', owner: 'jo', name: 'desk', base: 'b2' });
      await check('POST', '/api/v1/pis', '/api/v1/pis', { serial: 'nope', owner: 'jo', name: 'desk', base: 'b2' });
      await check('POST', '/api/v1/pis', '/api/v1/pis', { serial: '0a1b2c3d', owner: 'jo', name: 'desk', base: 'b2' });
      await check('POST', '/api/v1/pis', '/api/v1/pis', { serial: '0b1b2c3d', owner: 'jo', name: 'desk' });
      await check('GET', '/api/v1/pis', '/api/v1/pis');
      await check('GET', '/api/v1/pis/0a1b2c3d', '/api/v1/pis/{serial}');
      fleet.recordTimeline('0a1b2c3d', { type: 'file-served', file: '0a1b2c3d/start4.elf', bytes: 10, ms: 1, retries: 0 });
      await check('GET', '/api/v1/pis/0a1b2c3d/timeline', '/api/v1/pis/{serial}/timeline');
      await check('GET', '/api/v1/pis/ffffffff', '/api/v1/pis/{serial}');
      await check('GET', '/api/v1/discovered', '/api/v1/discovered');
      await check('GET', '/api/v1/bases', '/api/v1/bases');
      await check('DELETE', '/api/v1/bases/b2', '/api/v1/bases/{name}');
      await check('DELETE', '/api/v1/bases/b%2F2', '/api/v1/bases/{name}');
      await check('DELETE', '/api/v1/pis/0a1b2c3d', '/api/v1/pis/{serial}');
      await check('DELETE', '/api/v1/pis/0a1b2c3d', '/api/v1/pis/{serial}');
      await check('DELETE', '/api/v1/bases/b2', '/api/v1/bases/{name}');
      await check('DELETE', '/api/v1/bases/b2', '/api/v1/bases/{name}');
      await check('POST', '/api/v1/reset', '/api/v1/reset', { yes: true });
      await check('GET', '/api/v1/pis', '/api/v1/pis');
    });
  });
});
