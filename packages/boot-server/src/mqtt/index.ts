export {
  backoffDelay,
  bootPayload,
  defaultRegion,
  discoveryConfigs,
  objectId,
  REGION_PATTERN,
  redactUrl,
  statePayload,
  topics,
  type Topics,
} from './messages.js';
export { MqttBootPublisher, type MqttLinkState, type MqttPublisherOptions, type MqttStats } from './publisher.js';
export { registerMqttMetrics } from './metrics.js';
