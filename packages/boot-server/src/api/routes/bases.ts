// /api/v1/bases, /api/v1/setup, /api/v1/reset: the base verbs of pxetools (setup, remove-base, reset).
import { responses } from '../openapi.js';
import * as schemas from '../schemas.js';
import type { ApiRoutes } from '../types.js';

export const baseRoutes: ApiRoutes = (app, { fleet }) => {
  app.get(
    '/api/v1/bases',
    {
      schema: {
        summary: 'Base images available for new Pis',
        tags: ['bases'],
        response: responses({ status: 200, schema: schemas.baseList, description: 'Bases' }),
      },
    },
    async () => fleet.bases(),
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/bases/:name',
    {
      schema: {
        summary: 'Remove a base (pxetools remove-base); refused while Pis use it',
        tags: ['bases'],
        params: schemas.baseParams,
        response: responses(
          { status: 200, schema: schemas.baseRemoved, description: 'Removed (removed=false: no such base)' },
          400,
          403,
          409,
          503,
        ),
      },
    },
    async (request) => fleet.removeBase(request.params.name),
  );

  app.post<{ Body: schemas.SetupBody }>(
    '/api/v1/setup',
    {
      schema: {
        summary: 'Create a base from an image, tarballs or folders (pxetools setup)',
        tags: ['bases'],
        body: schemas.setupBody,
        response: responses({ status: 201, schema: schemas.base, description: 'The imported base' }, 400, 403, 404, 409, 422, 503),
      },
    },
    async (request, reply) => reply.code(201).send(await fleet.setup(request.body)),
  );

  app.post<{ Body: schemas.ResetBody }>(
    '/api/v1/reset',
    {
      schema: {
        summary: 'Remove every Pi, base and export: back to before setup (pxetools reset --yes)',
        tags: ['bases'],
        body: schemas.resetBody,
        response: responses({ status: 200, schema: schemas.resetResult, description: 'What was removed' }, 400, 403, 409, 503),
      },
    },
    async (request) => fleet.reset(request.body),
  );
};
