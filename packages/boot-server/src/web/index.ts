export { ASSET_PREFIX, defaultWebDir, loadWebAssets, pageWeight, WEB_FILES, type WebAsset, type WebAssets } from './assets.js';
export { CONTENT_SECURITY_POLICY, registerWebPage, webRoutes } from './routes.js';
