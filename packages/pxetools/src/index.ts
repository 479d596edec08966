export { main, listTable, USAGE, ROOT_MESSAGE, LIST_HEADERS } from './main.js';
export { renderTable, pythonG } from './table.js';
export { resolveFleetConfig, readConfigFile, detectServerIp, DEFAULT_CONFIG_FILE, FLEET_DEFAULTS } from './config.js';
export type { FleetConfig } from './config.js';
export type { CliIo } from './terminal.js';
