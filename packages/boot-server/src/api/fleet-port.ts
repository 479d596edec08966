import type { AddRequest, SetupSourceFields } from '@iot-tofu/fleet';

/**
 * What the API and the daemon need from the fleet, as plain JSON (the same JSON as
 * `pxetools --json`). The real `Fleet` is adapted to this in fleet-adapter.ts; keeping the port
 * narrow lets the API stay a thin shell over the domain verbs.
 */
export type Json = Record<string, unknown>;

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

export interface FleetPort {
  list(): Promise<Json[]>;
  /** Throws an IotTofuError with a NOT_FOUND-like code for an unknown serial. */
  get(serial: string): Promise<Json>;
  add(input: AddPiInput): Promise<Json>;
  remove(serial: string): Promise<Json>;
  timeline(serial: string): Promise<Json[]>;
  discovered(): Promise<Json[]>;
  bases(): Promise<Json[]>;
  setup(input: SetupInput): Promise<Json>;
  /** `{name, removed}`; removed=false when there was no such base. BASE_IN_USE while Pis use it. */
  removeBase(name: string): Promise<Json>;
  reset(input: ResetInput): Promise<Json>;
}
