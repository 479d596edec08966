// The API's schemas take their field rules from the packages that own them (rpi, fleet): no pattern
// is written by hand in api/schemas.ts, and a rule's meaning survives the trip into JSON schema.
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { BASE_NAME_PATTERN, DISK_SIZE_PATTERN, parseDiskSize } from '@iot-tofu/fleet';
import * as rpi from '@iot-tofu/rpi';
import * as schemas from '../src/api/schemas.js';

/** The rules their owners export: every `pattern` in the API's schemas must be one of these. */
const OWNED_RULES: Record<string, RegExp> = {
  SERIAL_PATTERN: rpi.SERIAL_PATTERN,
  MAC_PATTERN: rpi.MAC_PATTERN,
  HOSTNAME_PATTERN: rpi.HOSTNAME_PATTERN,
  OWNER_PATTERN: rpi.OWNER_PATTERN,
  IPV4_PATTERN: rpi.IPV4_PATTERN,
  USER_NAME_PATTERN: rpi.USER_NAME_PATTERN,
  PASSWORD_HASH_PATTERN: rpi.PASSWORD_HASH_PATTERN,
  BASE_NAME_PATTERN,
  DISK_SIZE_PATTERN,
};

/** The one pattern that is the API's own: an absolute path on the server (the fleet checks the rest). */
const API_OWN_PATTERNS = ['^/'];

function patternsIn(value: unknown, path: string, out: Array<{ path: string; pattern: string }>): typeof out {
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) patternsIn(item, `${path}[${i}]`, out);
  } else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'pattern' && typeof child === 'string') out.push({ path, pattern: child });
      else patternsIn(child, `${path}.${key}`, out);
    }
  }
  return out;
}

describe('API schemas', () => {
  const found = patternsIn(schemas, 'schemas', []);

  it('use only patterns their owners export', () => {
    const owned = new Set(Object.values(OWNED_RULES).map((rule) => rule.source));
    const byHand = found.filter(({ pattern }) => !owned.has(pattern) && !API_OWN_PATTERNS.includes(pattern));
    expect(byHand).toEqual([]);
    // The walk itself sees the schemas (a broken walk must not pass quietly).
    expect(found.map((f) => f.path)).toContain('schemas.addPiBody.properties.serial');
  });

  it('take rules whose meaning survives `.source` (no flags but u, which JSON schema adds)', () => {
    for (const [name, rule] of Object.entries(OWNED_RULES)) expect(rule.flags.replace('u', ''), name).toBe('');
  });

  it('accept a docker disk size exactly when the fleet can parse it', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validate = ajv.compile(schemas.addPiBody);
    const body = (dockerDisk: unknown) => ({ serial: '9f55bbfd', owner: 'jo', name: 'pi', dockerDisk });
    for (const size of ['8G', '512M', '8GiB', '8 gib', '0', '8589934592', '16t']) {
      expect(validate(body(size)), size).toBe(true);
      expect(() => parseDiskSize(size), size).not.toThrow();
    }
    for (const size of ['8X', 'G', '-1', '8 G B', '1.5G']) {
      expect(validate(body(size)), size).toBe(false);
      expect(() => parseDiskSize(size), size).toThrow();
    }
  });
});
