import { IotTofuError } from '@iot-tofu/errors';

/**
 * One rule per operator-given field, next to the types they describe: the CLI, the API's JSON
 * schemas (which take each pattern's `source`) and the config all check with these, so what one
 * accepts the others accept. Patterns carry no flags beyond `u` (JSON schema compiles them with
 * `u`), so case is spelled out in the classes.
 */

/** 8 or 16 hex digits, any case, optional 0x; nothing else (not even a trailing newline). */
export const SERIAL_PATTERN = /^(?:0[xX])?(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{16})$/;

/** Six hex pairs with ':' or '-' (or none): what normalizeMac accepts in canonical length. */
export const MAC_PATTERN = /^[0-9a-fA-F]{2}(?:[:-]?[0-9a-fA-F]{2}){5}$/;

/** One RFC 1123 host label: what `name` becomes in the Pi's /etc/hostname. */
export const HOSTNAME_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Who owns a Pi, written to its `owner` file and shown in tables: 1-64 printable characters (any
 * script), no control characters (tab, escape sequences, newlines would break the file and the
 * table), no '/', no leading or trailing blank. Shell metacharacters are fine: nothing of ours
 * hands it to a shell.
 */
export const OWNER_PATTERN = /^(?![\s])(?!.*[\s]$)[^\p{Cc}\p{Cf}/]{1,64}$/u;

/** A dotted-quad IPv4 address without leading zeros (a static address given for a Pi). */
export const IPV4_PATTERN = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;

export class InvalidIpError extends IotTofuError {
  constructor(input: string) {
    super('INVALID_IP', `Invalid IPv4 address ${JSON.stringify(input)}: expected four numbers 0-255 like 192.168.10.50`);
  }
}

/** Returns the address unchanged or throws INVALID_IP. */
export function checkIpv4(address: string): string {
  if (!IPV4_PATTERN.test(address)) throw new InvalidIpError(address);
  return address;
}

export class InvalidOwnerError extends IotTofuError {
  constructor(input: string) {
    super(
      'INVALID_OWNER',
      `Invalid owner ${JSON.stringify(input)}: 1-64 printable characters, no '/', no control characters, no leading or trailing blank`,
    );
  }
}

/** Returns the owner unchanged or throws INVALID_OWNER. */
export function checkOwner(owner: string): string {
  if (!OWNER_PATTERN.test(owner)) throw new InvalidOwnerError(owner);
  return owner;
}
