// GET /api/v1/events: the event bus as server-sent events, one `event:`/`data:` block per event.
import type { ServerResponse } from 'node:http';
import { BOOT_EVENT_NAMES } from '../../events.js';
import { ERROR_DESCRIPTIONS } from '../openapi.js';
import * as schemas from '../schemas.js';
import type { ApiRoutes } from '../types.js';

/** Bytes an event-stream client may fall behind before it is disconnected. */
const MAX_SSE_BUFFER = 1 << 20;

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

export const eventRoutes: ApiRoutes = (app, options) => {
  const streams = new Set<ServerResponse>();
  const keepAliveMs = (options.sseKeepAliveSeconds ?? 15) * 1000;

  const schema = {
    summary: `Live event stream (server-sent events: ${BOOT_EVENT_NAMES.join(', ')})`,
    tags: ['events'],
    response: {
      200: {
        description: 'One `event: <name>` + `data: <JSON>` block per event, `: keep-alive` comments in between',
        content: { 'text/event-stream': { schema: { type: 'string' } } },
      },
      401: { description: ERROR_DESCRIPTIONS[401], content: { 'application/json': { schema: schemas.error } } },
    },
  };

  app.get('/api/v1/events', { schema }, (request, reply) => {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, SSE_HEADERS);
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
    const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), keepAliveMs);
    keepAlive.unref();
    const done = () => {
      off();
      clearInterval(keepAlive);
      streams.delete(raw);
    };
    // The socket closing is the one signal that covers client aborts, resets and server shutdown.
    request.raw.socket.once('close', done);
    raw.once('close', done);
  });

  // Event streams never go idle, so end them before fastify waits for open connections.
  app.addHook('preClose', async () => {
    for (const raw of streams) raw.end();
    streams.clear();
  });
};
