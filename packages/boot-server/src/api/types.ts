// The options of the API and the shape of a route module (server.ts states the convention).
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { EventBus } from '../events.js';
import type { BootMetrics } from '../metrics.js';
import type { FleetPort } from './fleet-port.js';

export interface ApiOptions {
  fleet: FleetPort;
  bus: EventBus;
  metrics: BootMetrics;
  /** The bearer token every non-public request must carry. */
  token: string;
  logger?: Logger;
  /** Extra facts for /healthz (which servers run). */
  health?: () => Record<string, unknown>;
  /** nfsd and exports state for /healthz under `nfs` (the fleet's health()). */
  nfsHealth?: () => Promise<object>;
  /** Seconds between SSE keep-alive comments. */
  sseKeepAliveSeconds?: number;
  version?: string;
  /** More route modules on the same app, added after the core ones (see the convention in server.ts). */
  routes?: readonly ApiRoutes[];
}

/** A route module: declares its routes on the app. */
export type ApiRoutes = (app: FastifyInstance, options: ApiOptions) => void | Promise<void>;
