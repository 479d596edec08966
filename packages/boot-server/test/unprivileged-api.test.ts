// The installed daemon runs unprivileged: fleet changes through the API end in a 403 that names
// the privileged path (sudo pxetools), reads keep working.
import { describe, expect, it } from 'vitest';
import { IotTofuError } from '@iot-tofu/errors';
import { FleetError, type PiJson } from '@iot-tofu/fleet';
import { UNPRIVILEGED_HINT, fleetPort, statusForError, type FleetVerbs } from '../src/api.js';

function notRoot(verb: string): never {
  throw new FleetError('NOT_ROOT', `${verb} needs root privileges (owners, device nodes and exportfs); run with sudo or as root`);
}

const PI: PiJson = {
  serial: 'abcd1234',
  serialFull: 'abcd1234',
  owner: 'jo',
  name: 'pi',
  model: null,
  base: 'lite',
  mac: 'b8:27:eb:d1:23:4a',
  macDerived: true,
  macSource: 'derived',
  ip: null,
  staticIp: null,
  lastSeen: null,
  ownFilesystem: false,
  addedAt: '2026-01-01T00:00:00.000Z',
  tftpDir: '/srv/tftp/abcd1234',
  nfsDir: '/srv/nfs/abcd1234',
  dockerDisk: null,
  firstLogin: null,
};

const fleet: FleetVerbs = {
  list: () => [PI],
  get: () => PI,
  add: async () => notRoot('add'),
  remove: async () => notRoot('remove'),
  timeline: () => [],
  discovered: () => [],
  bases: () => [],
  setup: async () => notRoot('setup'),
  reset: async () => notRoot('reset'),
  removeBase: async () => notRoot('remove-base'),
  isRegistered: () => true,
};

describe('API on an unprivileged daemon', () => {
  const port = fleetPort(fleet);
  const changes: Array<[string, () => Promise<unknown>]> = [
    ['add', () => port.add({ serial: 'abcd1234', owner: 'jo', name: 'pi', base: 'lite' })],
    ['remove', () => port.remove('abcd1234')],
    ['setup', () => port.setup({ base: 'lite', image: '/x.img' })],
    ['reset', () => port.reset({ yes: true })],
    ['removeBase', () => port.removeBase('lite')],
  ];
  it.each(changes)('%s answers 403 with the sudo pxetools path', async (_verb, call) => {
    const error = await call().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(IotTofuError);
    expect((error as IotTofuError).code).toBe('NOT_ROOT');
    expect((error as IotTofuError).message).toBe(UNPRIVILEGED_HINT);
    expect((error as IotTofuError).message).toContain('sudo pxetools');
    expect(statusForError(error)).toBe(403);
  });
  it('reads still work', async () => {
    expect(await port.list()).toEqual([PI]);
  });
  it('other errors pass through unchanged', async () => {
    const exists = new FleetError('PI_EXISTS', 'Pi abcd1234 is already registered');
    const other = fleetPort({
      ...fleet,
      add: async () => {
        throw exists;
      },
    });
    const added = other.add({ serial: 'abcd1234', owner: 'jo', name: 'pi', base: 'lite' });
    await expect(added).rejects.toMatchObject({ code: 'PI_EXISTS', message: 'Pi abcd1234 is already registered' });
  });
});
