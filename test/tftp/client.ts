// Temporary: the TFTP test client moved to packages/tftp/test/client.ts; this line goes once every
// importer uses the new path.
export * from '../../packages/tftp/test/client.js';
