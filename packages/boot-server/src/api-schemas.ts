// JSON schemas of the API: fastify validates requests with them and @fastify/swagger turns the
// same objects into /api/v1/openapi.json, so the document cannot drift from what the server does.
import type { AddPiInput, ResetInput, SetupInput } from './fleet-port.js';

export type AddPiBody = AddPiInput;
export type SetupBody = SetupInput;
export type ResetBody = ResetInput;

const SERIAL_PATTERN = '^(0[xX])?([0-9a-fA-F]{8}|[0-9a-fA-F]{16})$';
const MAC_PATTERN = '^[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2}){5}$';
/** RFC 1123 host label: what `name` becomes on the Pi. */
const HOSTNAME_PATTERN = '^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$';
const BASE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';

const nullableString = { type: 'string', nullable: true } as const;

export const error = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } },
    },
  },
} as const;

export const serialParams = {
  type: 'object',
  required: ['serial'],
  properties: { serial: { type: 'string', pattern: SERIAL_PATTERN, description: '8 or 16 hex digits' } },
} as const;

export const pi = {
  type: 'object',
  required: ['serial'],
  additionalProperties: true,
  properties: {
    serial: { type: 'string' },
    owner: nullableString,
    name: nullableString,
    mac: nullableString,
    ip: nullableString,
    base: nullableString,
    model: nullableString,
    lastSeen: nullableString,
  },
} as const;

export const piList = { type: 'array', items: pi } as const;

export const removed = { type: 'object', additionalProperties: true, properties: { serial: { type: 'string' } } } as const;

export const timelineEntry = {
  type: 'object',
  required: ['at', 'type'],
  additionalProperties: true,
  properties: {
    at: { type: 'string', description: 'ISO 8601 time' },
    type: { type: 'string', description: 'discover, offer, file, failure, …' },
    file: { type: 'string' },
    bytes: { type: 'integer' },
    ms: { type: 'number' },
    retries: { type: 'integer' },
    reason: { type: 'string' },
  },
} as const;
export const timeline = { type: 'array', items: timelineEntry } as const;

export const discovered = {
  type: 'object',
  additionalProperties: true,
  properties: { serial: nullableString, mac: nullableString, ip: nullableString, model: nullableString, lastSeen: nullableString },
} as const;
export const discoveredList = { type: 'array', items: discovered } as const;

export const base = { type: 'object', required: ['name'], additionalProperties: true, properties: { name: { type: 'string' } } } as const;
export const baseList = { type: 'array', items: base } as const;

export const addPiBody = {
  type: 'object',
  required: ['serial'],
  additionalProperties: false,
  properties: {
    serial: { type: 'string', pattern: SERIAL_PATTERN, description: '8 or 16 hex digits, any case' },
    owner: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-z_][a-z0-9_-]*$', description: 'user on the server who owns the Pi' },
    name: { type: 'string', pattern: HOSTNAME_PATTERN, description: "the Pi's hostname (RFC 1123 label)" },
    base: { type: 'string', pattern: BASE_PATTERN },
    mac: { type: 'string', pattern: MAC_PATTERN },
  },
} as const;

const absolutePath = { type: 'string', minLength: 2, maxLength: 4096, pattern: '^/' } as const;
export const setupBody = {
  type: 'object',
  required: ['base'],
  additionalProperties: false,
  properties: {
    base: { type: 'string', pattern: BASE_PATTERN },
    image: { ...absolutePath, description: '.img or .img.xz on the server' },
    bootTarball: absolutePath,
    rootTarball: absolutePath,
    bootDir: absolutePath,
    rootfsDir: absolutePath,
  },
  // Exactly one source: an image, two tarballs, or two folders.
  oneOf: [
    { required: ['image'], not: { anyOf: [{ required: ['bootTarball'] }, { required: ['rootTarball'] }, { required: ['bootDir'] }, { required: ['rootfsDir'] }] } },
    { required: ['bootTarball', 'rootTarball'], not: { anyOf: [{ required: ['image'] }, { required: ['bootDir'] }, { required: ['rootfsDir'] }] } },
    { required: ['bootDir', 'rootfsDir'], not: { anyOf: [{ required: ['image'] }, { required: ['bootTarball'] }, { required: ['rootTarball'] }] } },
  ],
} as const;

export const resetBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    serials: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', pattern: SERIAL_PATTERN } },
    all: { type: 'boolean' },
  },
  oneOf: [{ required: ['serials'] }, { required: ['all'] }],
} as const;

export const resetResult = { type: 'object', additionalProperties: true } as const;
