import type { AddRequest, BaseJson, DiscoveredPi, Fleet, PiJson, RemoveResult, SetupSourceFields, TimelineEvent } from '@iot-tofu/fleet';

/**
 * The Fleet verbs the API uses, typed by @iot-tofu/fleet itself (tests may hand in the real Fleet or
 * a fake of these). `list` is the one overload we call: without options, the registered Pis.
 */
export type FleetVerbs = Pick<Fleet, UsedVerb> & { list(): PiJson[] };

type UsedVerb = 'get' | 'add' | 'remove' | 'timeline' | 'discovered' | 'bases' | 'setup' | 'reset' | 'removeBase' | 'isRegistered';

/** The fleet's add request without per-Pi config.txt (not offered over HTTP). */
export type AddPiInput = Omit<AddRequest, 'configTxt'>;

export interface SetupInput extends SetupSourceFields {
  base: string;
  /** Serve this base's boot files as the default (`<tftpRoot>/base/`). */
  makeDefault?: boolean;
}

/** Reset removes every Pi, base and export (like `pxetools reset --yes`); the body must confirm it. */
export interface ResetInput {
  yes: true;
}

type Answer<Verb extends keyof FleetVerbs> = Awaited<ReturnType<FleetVerbs[Verb]>>;

/**
 * What the routes need from the fleet: its verbs as the API offers them, answering the same JSON as
 * `pxetools --json` (the fleet's own result types). fleet-adapter.ts turns a Fleet into this; the
 * routes stay a thin shell over the domain verbs.
 */
export interface FleetPort {
  list(): Promise<PiJson[]>;
  /** PI_NOT_FOUND for an unknown serial. */
  get(serial: string): Promise<PiJson>;
  add(input: AddPiInput): Promise<Answer<'add'>['pi']>;
  remove(serial: string): Promise<RemoveResult>;
  timeline(serial: string): Promise<TimelineEvent[]>;
  discovered(): Promise<DiscoveredPi[]>;
  bases(): Promise<BaseJson[]>;
  setup(input: SetupInput): Promise<Answer<'setup'>['base']>;
  /** `{name, removed}`; removed=false when there was no such base. BASE_IN_USE while Pis use it. */
  removeBase(name: string): Promise<Answer<'removeBase'>>;
  reset(input: ResetInput): Promise<Answer<'reset'>>;
}
