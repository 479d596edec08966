// JSON schemas of the API: fastify validates requests with them and @fastify/swagger turns the
// same objects into /api/v1/openapi.json, so the document cannot drift from what the server does.
import { BASE_NAME_PATTERN } from '@iot-tofu/fleet';
import {
  HOSTNAME_PATTERN as HOSTNAME_RULE,
  IPV4_PATTERN as IPV4_RULE,
  MAC_PATTERN as MAC_RULE,
  OWNER_PATTERN as OWNER_RULE,
  PASSWORD_HASH_PATTERN as PASSWORD_HASH_RULE,
  SERIAL_PATTERN as SERIAL_RULE,
  USER_NAME_PATTERN as USER_NAME_RULE,
} from '@iot-tofu/rpi';
import type { AddPiInput, ResetInput, SetupInput } from './fleet-port.js';

export type AddPiBody = AddPiInput;
export type SetupBody = SetupInput;
export type ResetBody = ResetInput;

// The field rules are owned next to their types (rpi, fleet); the schemas take their sources, so
// the API accepts exactly what the CLI and the config accept.
const SERIAL_PATTERN = SERIAL_RULE.source;
const MAC_PATTERN = MAC_RULE.source;
const HOSTNAME_PATTERN = HOSTNAME_RULE.source;
const OWNER_PATTERN = OWNER_RULE.source;
const BASE_PATTERN = BASE_NAME_PATTERN.source;
const IPV4_PATTERN = IPV4_RULE.source;
const USER_NAME_SOURCE = USER_NAME_RULE.source;
const PASSWORD_HASH_SOURCE = PASSWORD_HASH_RULE.source;

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

const modelEnum = { type: 'string', nullable: true, enum: ['pi3b', 'pi3b+', 'pi4', 'pi5', null] } as const;

/** PiJson of @iot-tofu/fleet: what `pxetools --json` prints for a Pi. */
export const pi = {
  type: 'object',
  required: ['serial', 'serialFull', 'owner', 'name', 'model', 'base', 'mac', 'macDerived', 'macSource', 'ip', 'lastSeen', 'ownFilesystem', 'addedAt', 'tftpDir', 'nfsDir'],
  additionalProperties: true,
  properties: {
    serial: { type: 'string', description: 'folder name: low 8 hex digits, lower case' },
    serialFull: { type: 'string', description: 'every digit the operator gave (8 or 16)' },
    owner: { type: 'string' },
    name: { type: 'string' },
    model: modelEnum,
    base: nullableString,
    mac: { type: 'string', description: 'learned, else configured, else derived from the serial (b8:27:eb:…)' },
    macDerived: { type: 'boolean' },
    macSource: { type: 'string', enum: ['learned', 'configured', 'derived'] },
    ip: nullableString,
    lastSeen: nullableString,
    ownFilesystem: { type: 'boolean' },
    addedAt: { type: 'string' },
    tftpDir: { type: 'string' },
    nfsDir: { type: 'string' },
    staticIp: { ...nullableString, description: 'the fixed address full-DHCP mode hands this Pi (pxetools --add … --ip)' },
  },
} as const;

export const piList = { type: 'array', items: pi } as const;

export const removed = {
  type: 'object',
  required: ['serial', 'removed'],
  additionalProperties: true,
  properties: { serial: { type: 'string' }, removed: { type: 'boolean', description: 'false when nothing was there (remove is idempotent)' } },
} as const;

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
  required: ['serial', 'mac', 'ip', 'model', 'firstSeen', 'lastSeen'],
  additionalProperties: true,
  properties: { serial: nullableString, mac: { type: 'string' }, ip: nullableString, model: modelEnum, firstSeen: { type: 'string' }, lastSeen: { type: 'string' } },
} as const;
export const discoveredList = { type: 'array', items: discovered } as const;

export const base = {
  type: 'object',
  required: ['name', 'rootDir', 'bootDir', 'default', 'layout', 'source', 'importedAt', 'bytes', 'files'],
  additionalProperties: true,
  properties: {
    name: { type: 'string' },
    rootDir: { type: 'string' },
    bootDir: { type: 'string' },
    default: { type: 'boolean' },
    layout: { type: 'string', enum: ['bookworm', 'legacy'] },
    source: { type: 'string' },
    importedAt: { type: 'string' },
    bytes: { type: 'integer' },
    files: { type: 'integer' },
  },
} as const;
export const baseList = { type: 'array', items: base } as const;

export const addPiBody = {
  type: 'object',
  required: ['serial', 'owner', 'name'],
  additionalProperties: false,
  properties: {
    serial: { type: 'string', pattern: SERIAL_PATTERN, description: '8 or 16 hex digits, any case' },
    owner: { type: 'string', pattern: OWNER_PATTERN, description: "who owns the Pi: 1-64 printable characters, no '/', no control characters, no leading or trailing blank" },
    name: { type: 'string', pattern: HOSTNAME_PATTERN, description: "the Pi's hostname (RFC 1123 label)" },
    base: { type: 'string', pattern: BASE_PATTERN, description: 'default: the default base' },
    mac: { type: 'string', pattern: MAC_PATTERN, description: "the Pi's real MAC (Pi 4/5 MACs are not derived from the serial)" },
    ip: { type: 'string', pattern: IPV4_PATTERN, description: 'a fixed address for the Pi, handed out in full-DHCP mode (dhcpMode full)' },
    ownFilesystem: { type: 'boolean', description: 'create empty folders; the operator fills the root' },
    dockerDisk: {
      anyOf: [{ type: 'string', pattern: '^[0-9]{1,16} ?([KMGTkmgt](i?B)?)?$' }, { type: 'boolean' }],
      description: "size of the Pi's docker disk, a sparse ext4 image in its root loop-mounted at /var/lib/docker (e.g. 8G; 0 = none; default: the server's dockerDisk setting); the boolean of earlier releases: true = the default size, false = none",
    },
    sshKeys: { type: 'string', maxLength: 65536, description: 'SSH public keys (authorized_keys lines): for the first user when user is given, else for root' },
    user: { type: 'string', pattern: USER_NAME_SOURCE, description: "first user: Pi OS's userconfig renames its uid-1000 user to this on first boot (userconf.txt); needs passwordHash" },
    passwordHash: { type: 'string', pattern: PASSWORD_HASH_SOURCE, description: 'crypt(3) hash for user ($6$… from openssl passwd -6, or $y$… yescrypt); plain passwords are refused' },
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
    makeDefault: { type: 'boolean', description: "serve this base's boot files in <tftpRoot>/base/ (default: the first base)" },
  },
  // Exactly one source: an image, two tarballs, or two folders.
  oneOf: [
    { required: ['image'], not: { anyOf: [{ required: ['bootTarball'] }, { required: ['rootTarball'] }, { required: ['bootDir'] }, { required: ['rootfsDir'] }] } },
    { required: ['bootTarball', 'rootTarball'], not: { anyOf: [{ required: ['image'] }, { required: ['bootDir'] }, { required: ['rootfsDir'] }] } },
    { required: ['bootDir', 'rootfsDir'], not: { anyOf: [{ required: ['image'] }, { required: ['bootTarball'] }, { required: ['rootTarball'] }] } },
  ],
} as const;

export const baseParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: BASE_PATTERN, description: 'base name' } },
} as const;

export const baseRemoved = {
  type: 'object',
  required: ['name', 'removed'],
  additionalProperties: true,
  properties: { name: { type: 'string' }, removed: { type: 'boolean', description: 'false when there was no such base (remove is idempotent)' } },
} as const;

export const resetBody = {
  type: 'object',
  required: ['yes'],
  additionalProperties: false,
  properties: { yes: { type: 'boolean', enum: [true], description: 'confirms removing every Pi, base and export' } },
} as const;

export const resetResult = {
  type: 'object',
  required: ['removed', 'bases'],
  additionalProperties: true,
  properties: { removed: { type: 'array', items: { type: 'string' } }, bases: { type: 'array', items: { type: 'string' } } },
} as const;

export const setupResult = base;
