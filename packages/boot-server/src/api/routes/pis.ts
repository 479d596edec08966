// /api/v1/pis and /api/v1/discovered: the Pi verbs of pxetools (--list, --add, --remove) over HTTP.
import { responses } from '../openapi.js';
import * as schemas from '../schemas.js';
import type { ApiRoutes } from '../types.js';

const PI_JSON = 'The Pi (same JSON as pxetools --json)';

export const piRoutes: ApiRoutes = (app, { fleet }) => {
  app.get(
    '/api/v1/pis',
    {
      schema: {
        summary: 'List registered Pis (pxetools --list --json)',
        tags: ['pis'],
        response: responses({ status: 200, schema: schemas.piList, description: 'Registered Pis, sorted by serial' }),
      },
    },
    async () => fleet.list(),
  );

  app.post<{ Body: schemas.AddPiBody }>(
    '/api/v1/pis',
    {
      schema: {
        summary: 'Register a Pi (pxetools --add)',
        tags: ['pis'],
        body: schemas.addPiBody,
        response: responses({ status: 201, schema: schemas.pi, description: PI_JSON }, 400, 403, 404, 409, 422, 503),
      },
    },
    async (request, reply) => reply.code(201).send(await fleet.add(request.body)),
  );

  app.get<{ Params: { serial: string } }>(
    '/api/v1/pis/:serial',
    {
      schema: {
        summary: 'One registered Pi',
        tags: ['pis'],
        params: schemas.serialParams,
        response: responses({ status: 200, schema: schemas.pi, description: PI_JSON }, 400, 404),
      },
    },
    async (request) => fleet.get(request.params.serial),
  );

  app.delete<{ Params: { serial: string } }>(
    '/api/v1/pis/:serial',
    {
      schema: {
        summary: 'Remove a Pi (pxetools --remove)',
        tags: ['pis'],
        params: schemas.serialParams,
        response: responses(
          { status: 200, schema: schemas.removed, description: 'Removed (removed=false: nothing was there)' },
          400,
          403,
          409,
          503,
        ),
      },
    },
    async (request) => fleet.remove(request.params.serial),
  );

  app.get<{ Params: { serial: string } }>(
    '/api/v1/pis/:serial/timeline',
    {
      schema: {
        summary: "A Pi's boot timeline, oldest first",
        tags: ['pis'],
        params: schemas.serialParams,
        response: responses({ status: 200, schema: schemas.timeline, description: 'Boot timeline, oldest first' }, 400, 404),
      },
    },
    async (request) => fleet.timeline(request.params.serial),
  );

  app.get(
    '/api/v1/discovered',
    {
      schema: {
        summary: 'Pis seen on the wire but not registered',
        tags: ['pis'],
        response: responses({ status: 200, schema: schemas.discoveredList, description: 'Pis seen on the network but not registered' }),
      },
    },
    async () => fleet.discovered(),
  );
};
