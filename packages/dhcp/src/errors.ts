import { IotTofuError } from '@iot-tofu/errors';

/** A message we were asked to encode cannot be put on the wire (bad field, too large). */
export class DhcpEncodeError extends IotTofuError {
  constructor(message: string) {
    super('DHCP_ENCODE_ERROR', message);
  }
}

/** The proxy configuration or policy is unusable (names the offending key). */
export class ProxyConfigError extends IotTofuError {
  readonly key: string;

  constructor(key: string, message: string) {
    super('DHCP_CONFIG_ERROR', `${key}: ${message}`);
    this.key = key;
  }
}

/** A UDP socket of the proxy could not be bound (port in use, no permission, no such address). */
export class DhcpBindError extends IotTofuError {
  constructor(address: string, port: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('DHCP_BIND_FAILED', `cannot bind UDP ${address}:${port}: ${reason}`, { cause });
  }
}
