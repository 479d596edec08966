// Public probes: /healthz for monitors and systemd, /metrics for Prometheus. No token, not in the OpenAPI document.
import type { ApiRoutes } from '../types.js';

export const healthRoutes: ApiRoutes = (app, options) => {
  app.get('/healthz', { schema: { hide: true }, config: { public: true } }, async () => ({
    status: 'ok',
    ...(options.health?.() ?? {}),
    ...(options.nfsHealth ? { nfs: await options.nfsHealth() } : {}),
  }));

  app.get('/metrics', { schema: { hide: true }, config: { public: true } }, async (_request, reply) => {
    reply.header('content-type', options.metrics.contentType);
    return options.metrics.render();
  });
};
