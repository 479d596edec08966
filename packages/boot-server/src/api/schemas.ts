// JSON schemas of the API: fastify validates requests with them and @fastify/swagger turns the
// same objects into /api/v1/openapi.json, so the document cannot drift from what the server does.
// Field rules are not written here: each pattern is the `source` of the RegExp its owner exports
// (rpi for Pi fields, fleet for base names and disk sizes), so the API accepts exactly what the CLI
// and the config accept. test/api-schemas.test.ts holds every pattern below to that.
import { BASE_NAME_PATTERN, DISK_SIZE_PATTERN, type BaseJson, type MacSource } from '@iot-tofu/fleet';
import {
  HOSTNAME_PATTERN,
  IPV4_PATTERN,
  MAC_PATTERN,
  OWNER_PATTERN,
  PASSWORD_HASH_PATTERN,
  PI_MODELS,
  SERIAL_PATTERN,
  USER_NAME_PATTERN,
} from '@iot-tofu/rpi';
import type { AddPiInput, ResetInput, SetupInput } from './fleet-port.js';

export type AddPiBody = AddPiInput;
export type SetupBody = SetupInput;
export type ResetBody = ResetInput;

/** A string schema that must match an owner's RegExp (JSON schema compiles patterns with the `u` flag). */
function matching(rule: RegExp, description?: string) {
  return { type: 'string', pattern: rule.source, ...(description ? { description } : {}) } as const;
}

/** Every member of a union type, checked by the compiler both ways (nothing missing, nothing extra). */
function everyMember<T extends string>() {
  return <const A extends readonly T[]>(values: A & ([T] extends [A[number]] ? unknown : never)): A => values;
}

const MAC_SOURCES = everyMember<MacSource>()(['learned', 'configured', 'derived']);
const BASE_LAYOUTS = everyMember<BaseJson['layout']>()(['bookworm', 'legacy']);

const nullableString = { type: 'string', nullable: true } as const;
const modelEnum = { type: 'string', nullable: true, enum: [...PI_MODELS, null] } as const;

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
  properties: { serial: matching(SERIAL_PATTERN, '8 or 16 hex digits') },
} as const;

/** PiJson of @iot-tofu/fleet: what `pxetools --json` prints for a Pi. */
export const pi = {
  type: 'object',
  required: [
    'serial',
    'serialFull',
    'owner',
    'name',
    'model',
    'base',
    'mac',
    'macDerived',
    'macSource',
    'ip',
    'staticIp',
    'lastSeen',
    'ownFilesystem',
    'addedAt',
    'tftpDir',
    'nfsDir',
    'dockerDisk',
    'firstLogin',
  ],
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
    macSource: { type: 'string', enum: MAC_SOURCES },
    ip: nullableString,
    staticIp: { ...nullableString, description: 'the fixed address full-DHCP mode hands this Pi (pxetools --add … --ip)' },
    lastSeen: nullableString,
    ownFilesystem: { type: 'boolean' },
    addedAt: { type: 'string' },
    tftpDir: { type: 'string' },
    nfsDir: { type: 'string' },
    dockerDisk: {
      type: 'object',
      nullable: true,
      required: ['path', 'bytes'],
      description: "the Pi's docker disk (an ext4 image in its root, mounted at /var/lib/docker); null when none",
      properties: { path: { type: 'string' }, bytes: { type: 'integer' } },
    },
    firstLogin: {
      type: 'object',
      nullable: true,
      required: ['user', 'sshKeys'],
      description: 'what add prepared for the first login (never the password hash); null when nothing',
      properties: { user: nullableString, sshKeys: { type: 'integer', description: 'public keys written' } },
    },
  },
} as const;

export const piList = { type: 'array', items: pi } as const;

export const removed = {
  type: 'object',
  required: ['serial', 'removed'],
  additionalProperties: true,
  properties: {
    serial: { type: 'string' },
    removed: { type: 'boolean', description: 'false when nothing was there (remove is idempotent)' },
  },
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
  properties: {
    serial: nullableString,
    mac: { type: 'string' },
    ip: nullableString,
    model: modelEnum,
    firstSeen: { type: 'string' },
    lastSeen: { type: 'string' },
  },
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
    layout: { type: 'string', enum: BASE_LAYOUTS },
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
    serial: matching(SERIAL_PATTERN, '8 or 16 hex digits, any case'),
    owner: matching(
      OWNER_PATTERN,
      "who owns the Pi: 1-64 printable characters, no '/', no control characters, no leading or trailing blank",
    ),
    name: matching(HOSTNAME_PATTERN, "the Pi's hostname (RFC 1123 label)"),
    base: matching(BASE_NAME_PATTERN, 'default: the default base'),
    mac: matching(MAC_PATTERN, "the Pi's real MAC (Pi 4/5 MACs are not derived from the serial)"),
    ip: matching(IPV4_PATTERN, 'a fixed address for the Pi, handed out in full-DHCP mode (dhcpMode full)'),
    ownFilesystem: { type: 'boolean', description: 'create empty folders; the operator fills the root' },
    dockerDisk: {
      anyOf: [matching(DISK_SIZE_PATTERN), { type: 'boolean' }],
      description: [
        "size of the Pi's docker disk, a sparse ext4 image in its root loop-mounted at /var/lib/docker",
        "(e.g. 8G; 0 = none; default: the server's dockerDisk setting);",
        'the boolean of earlier releases: true = the default size, false = none',
      ].join(' '),
    },
    sshKeys: {
      type: 'string',
      maxLength: 65536,
      description: 'SSH public keys (authorized_keys lines): for the first user when user is given, else for root',
    },
    user: matching(
      USER_NAME_PATTERN,
      "first user: Pi OS's userconfig renames its uid-1000 user to this on first boot (userconf.txt); needs passwordHash",
    ),
    passwordHash: matching(
      PASSWORD_HASH_PATTERN,
      'crypt(3) hash for user ($6$… from openssl passwd -6, or $y$… yescrypt); plain passwords are refused',
    ),
  },
} as const;

/** A path on the server; the fleet checks it exists. Not an owner's rule: just "absolute". */
const absolutePath = { type: 'string', minLength: 2, maxLength: 4096, pattern: '^/' } as const;

const SETUP_SOURCES = ['image', 'bootTarball', 'rootTarball', 'bootDir', 'rootfsDir'] as const;

/** One way to give a setup its source: these fields, and none of the others. */
function onlySource(...fields: (typeof SETUP_SOURCES)[number][]) {
  const others = SETUP_SOURCES.filter((field) => !fields.includes(field));
  return { required: fields, not: { anyOf: others.map((field) => ({ required: [field] })) } };
}

export const setupBody = {
  type: 'object',
  required: ['base'],
  additionalProperties: false,
  properties: {
    base: matching(BASE_NAME_PATTERN),
    image: { ...absolutePath, description: '.img or .img.xz on the server' },
    bootTarball: absolutePath,
    rootTarball: absolutePath,
    bootDir: absolutePath,
    rootfsDir: absolutePath,
    makeDefault: { type: 'boolean', description: "serve this base's boot files in <tftpRoot>/base/ (default: the first base)" },
  },
  // Exactly one source: an image, two tarballs, or two folders.
  oneOf: [onlySource('image'), onlySource('bootTarball', 'rootTarball'), onlySource('bootDir', 'rootfsDir')],
} as const;

export const baseParams = {
  type: 'object',
  required: ['name'],
  properties: { name: matching(BASE_NAME_PATTERN, 'base name') },
} as const;

export const baseRemoved = {
  type: 'object',
  required: ['name', 'removed'],
  additionalProperties: true,
  properties: {
    name: { type: 'string' },
    removed: { type: 'boolean', description: 'false when there was no such base (remove is idempotent)' },
  },
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
