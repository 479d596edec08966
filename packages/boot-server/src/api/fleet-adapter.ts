import { IotTofuError } from '@iot-tofu/errors';
import { chooseSetupSource } from '@iot-tofu/fleet';
import { parseSerial } from '@iot-tofu/rpi';
import type { AddPiInput, FleetPort, Json, ResetInput, SetupInput } from './fleet-port.js';

/** The parts of `@iot-tofu/fleet`'s Fleet the API uses (structural, so tests can hand in the real one). */
export interface FleetVerbs {
  list(): object[];
  get(serial: string): object;
  add(request: { serial: string; owner: string; name: string; base?: string; mac?: string; ip?: string; ownFilesystem?: boolean; dockerDisk?: string | boolean; sshKeys?: string; user?: string; passwordHash?: string }): Promise<{ pi: object }>;
  remove(serial: string): Promise<object>;
  timeline(serial: string): object[];
  discovered(): object[];
  bases(): object[];
  setup(request: { base: string; source: { kind: 'image'; image: string } | { kind: 'tarballs'; boot: string; root: string } | { kind: 'dirs'; boot: string; root: string }; makeDefault?: boolean }): Promise<{ base: object }>;
  reset(): Promise<object>;
  removeBase(name: string): Promise<{ name: string; removed: boolean }>;
  isRegistered(query: { serial?: string; mac?: string }): boolean;
}

function setupSource(input: SetupInput) {
  const choice = chooseSetupSource(input);
  // The request schema already enforces one source; this guards direct callers.
  if ('problem' in choice) throw new IotTofuError('INVALID_REQUEST', 'setup needs one source: image, bootTarball + rootTarball, or bootDir + rootfsDir');
  return choice.source;
}

/**
 * The API's answer when the daemon runs unprivileged (the installed service: user iot-tofu with
 * CAP_NET_BIND_SERVICE only) and a client asks for a change that needs root: a 403 that names
 * the privileged path, `pxetools` run as root on the server; the daemon sees its changes at once.
 */
export const UNPRIVILEGED_HINT =
  'this boot server runs unprivileged (the installed service); changes to Pis and bases need root (owners, device nodes, exportfs): run them on the server with sudo pxetools (e.g. sudo pxetools --add SERIAL --owner O --name N --base B); the daemon picks them up without a restart';

async function privileged<T>(verb: () => Promise<T>): Promise<T> {
  try {
    return await verb();
  } catch (error) {
    if (error instanceof IotTofuError && error.code === 'NOT_ROOT') throw new IotTofuError('NOT_ROOT', UNPRIVILEGED_HINT, { cause: error });
    throw error;
  }
}

/**
 * Presents a Fleet as the API's port: same verbs, same JSON as `pxetools --json`. `onChange` runs
 * after each successful change (the registry watcher only reports other processes' writes).
 */
export function fleetPort(fleet: FleetVerbs, onChange: () => void = () => undefined): FleetPort {
  const json = (value: object) => value as Json;
  const changed = <T>(value: T): T => {
    onChange();
    return value;
  };
  return {
    list: async () => fleet.list().map(json),
    get: async (serial) => json(fleet.get(serial)),
    add: async (input: AddPiInput) => privileged(async () => {
      // Like `pxetools --add` without a terminal: base is required unless ownFilesystem (the fleet says so).
      const { serial, owner, name, base, mac, ip, ownFilesystem, dockerDisk, sshKeys, user, passwordHash } = input;
      const result = await fleet.add({
        serial,
        owner,
        name,
        ...(base ? { base } : {}),
        ...(mac ? { mac } : {}),
        ...(ip !== undefined ? { ip } : {}),
        ...(ownFilesystem ? { ownFilesystem } : {}),
        ...(dockerDisk !== undefined ? { dockerDisk } : {}),
        ...(sshKeys !== undefined ? { sshKeys } : {}),
        ...(user !== undefined ? { user } : {}),
        ...(passwordHash !== undefined ? { passwordHash } : {}),
      });
      return changed(json(result.pi));
    }),
    remove: async (serial) => privileged(async () => changed(json(await fleet.remove(serial)))),
    timeline: async (serial) => {
      const short = parseSerial(serial).short;
      const events = fleet.timeline(short);
      // Unregistered Pis that were seen keep a timeline too; a serial nobody knows is a 404.
      if (events.length === 0 && !fleet.isRegistered({ serial: short })) {
        throw new IotTofuError('PI_NOT_FOUND', `Pi ${short} is not registered and has no boot timeline`);
      }
      return events.map(json);
    },
    discovered: async () => fleet.discovered().map(json),
    bases: async () => fleet.bases().map(json),
    setup: async (input: SetupInput) => privileged(async () => changed(json((await fleet.setup({ base: input.base, source: setupSource(input), ...(input.makeDefault !== undefined ? { makeDefault: input.makeDefault } : {}) })).base))),
    reset: async (_input: ResetInput) => privileged(async () => changed(json(await fleet.reset()))),
    removeBase: async (name) =>
      privileged(async () => {
        const result = await fleet.removeBase(name);
        return result.removed ? changed(json(result)) : json(result);
      }),
  };
}
