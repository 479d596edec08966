import { refuse, type KeySpec } from '@iot-tofu/fleet';
import { REGION_PATTERN } from './messages.js';

/** Schemes mqtt.js connects with; anything else would fail later, at the first connect. */
const MQTT_SCHEMES = new Set(['mqtt:', 'mqtts:', 'ws:', 'wss:']);

/** The daemon's MQTT keys for the config resolver (config.ts): `mqttUrl` (off when unset) and `region`. */
export const MQTT_CONFIG_KEYS: Readonly<Record<'mqttUrl' | 'region', KeySpec>> = {
  mqttUrl: {
    parse: (value, at) => {
      const text = typeof value === 'string' ? value.trim() : '';
      let url: URL | undefined;
      try {
        url = new URL(text);
      } catch {
        url = undefined;
      }
      // Never echo a URL that may carry a password back into a log line.
      if (url && MQTT_SCHEMES.has(url.protocol) && url.hostname) return text;
      return refuse(at, 'expected mqtt://host[:port] (or mqtts://, ws://, wss://)', url ? `${url.protocol}…` : '(not a URL)');
    },
  },
  region: {
    parse: (value, at) => {
      const text = typeof value === 'string' ? value.trim() : '';
      return REGION_PATTERN.test(text) ? text : refuse(at, 'expected 1-64 letters, digits, "-" or "_" (one MQTT topic segment)', value);
    },
  },
};
