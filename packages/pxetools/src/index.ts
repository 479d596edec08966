export { main, listTable, USAGE, ROOT_MESSAGE, LIST_HEADERS } from './main.js';
export { renderTable, pythonG } from './table.js';
export { loadCliConfig } from './config.js';
export type { CliIo } from './terminal.js';
