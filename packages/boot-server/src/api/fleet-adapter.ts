import { IotTofuError } from '@iot-tofu/errors';
import { chooseSetupSource, type AddRequest, type SetupSource } from '@iot-tofu/fleet';
import { parseSerial } from '@iot-tofu/rpi';
import type { AddPiInput, FleetPort, FleetVerbs, SetupInput } from './fleet-port.js';

function setupSource(input: SetupInput): SetupSource {
  const choice = chooseSetupSource(input);
  // The request schema already enforces one source; this guards direct callers.
  if ('problem' in choice) {
    throw new IotTofuError('INVALID_REQUEST', 'setup needs one source: image, bootTarball + rootTarball, or bootDir + rootfsDir');
  }
  return choice.source;
}

/**
 * The API's answer when the daemon runs unprivileged (the installed service: user iot-tofu with
 * CAP_NET_BIND_SERVICE only) and a client asks for a change that needs root: a 403 that names
 * the privileged path, `pxetools` run as root on the server; the daemon sees its changes at once.
 */
export const UNPRIVILEGED_HINT = [
  'this boot server runs unprivileged (the installed service);',
  'changes to Pis and bases need root (owners, device nodes, exportfs):',
  'run them on the server with sudo pxetools (e.g. sudo pxetools --add SERIAL --owner O --name N --base B);',
  'the daemon picks them up without a restart',
].join(' ');

async function privileged<T>(verb: () => Promise<T>): Promise<T> {
  try {
    return await verb();
  } catch (error) {
    if (error instanceof IotTofuError && error.code === 'NOT_ROOT') throw new IotTofuError('NOT_ROOT', UNPRIVILEGED_HINT, { cause: error });
    throw error;
  }
}

/** The add request without the fields the client left out (the fleet tells "absent" from "empty"). */
function addRequest(input: AddPiInput): AddRequest {
  const { serial, owner, name, base, mac, ip, ownFilesystem, dockerDisk, sshKeys, user, passwordHash } = input;
  return {
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
  };
}

/**
 * Presents a Fleet as the API's port: same verbs, same JSON as `pxetools --json`. `onChange` runs
 * after each successful change (the registry watcher only reports other processes' writes).
 */
export function fleetPort(fleet: FleetVerbs, onChange: () => void = () => undefined): FleetPort {
  const changed = <T>(value: T): T => {
    onChange();
    return value;
  };
  return {
    list: async () => fleet.list(),
    get: async (serial) => fleet.get(serial),
    // Like `pxetools --add` without a terminal: base is required unless ownFilesystem (the fleet says so).
    add: async (input) => privileged(async () => changed((await fleet.add(addRequest(input))).pi)),
    remove: async (serial) => privileged(async () => changed(await fleet.remove(serial))),
    timeline: async (serial) => {
      const short = parseSerial(serial).short;
      const events = fleet.timeline(short);
      // Unregistered Pis that were seen keep a timeline too; a serial nobody knows is a 404.
      if (events.length === 0 && !fleet.isRegistered({ serial: short })) {
        throw new IotTofuError('PI_NOT_FOUND', `Pi ${short} is not registered and has no boot timeline`);
      }
      return events;
    },
    discovered: async () => fleet.discovered(),
    bases: async () => fleet.bases(),
    setup: async (input) =>
      privileged(async () => {
        const makeDefault = input.makeDefault !== undefined ? { makeDefault: input.makeDefault } : {};
        return changed((await fleet.setup({ base: input.base, source: setupSource(input), ...makeDefault })).base);
      }),
    reset: async () => privileged(async () => changed(await fleet.reset())),
    removeBase: async (name) =>
      privileged(async () => {
        const result = await fleet.removeBase(name);
        return result.removed ? changed(result) : result;
      }),
  };
}
