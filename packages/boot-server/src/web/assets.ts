import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** One file of the fleet page, held in memory as sent. */
export interface WebAsset {
  body: Buffer;
  /** The same bytes gzipped, when that is smaller. */
  gzip?: Buffer;
  contentType: string;
  etag: string;
}

export interface WebAssets {
  /** Content hash of every asset: the URL folder they are served under, so they can be cached for good. */
  version: string;
  /** index.html with its asset links pointing at /web/<version>/. */
  page: WebAsset;
  /** app.js, timeline.js, boot-state.js, app.css, icon.svg by file name. */
  files: ReadonlyMap<string, WebAsset>;
}

/** The files under packages/boot-server/web/ the page is made of (nothing else there is served). */
export const WEB_FILES = ['app.js', 'timeline.js', 'boot-state.js', 'app.css', 'icon.svg'] as const;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** URL prefix of the page's assets; index.html says %ASSETS% where it goes. */
export const ASSET_PREFIX = '/web';

/**
 * The web/ folder next to src/ and dist/: src/web/assets.ts and dist/web/assets.js sit at the same
 * depth, so one relative path serves the repository (tsx) and the installed package alike.
 */
export function defaultWebDir(): string {
  return fileURLToPath(new URL('../../web/', import.meta.url));
}

function asset(name: string, body: Buffer): WebAsset {
  const zipped = gzipSync(body, { level: 9 });
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  const contentType = CONTENT_TYPES[extname(name)] ?? 'application/octet-stream';
  return { body, ...(zipped.length < body.length ? { gzip: zipped } : {}), contentType, etag };
}

/** Reads the page once (at daemon start); every request is then answered from memory. */
export function loadWebAssets(dir: string = defaultWebDir()): WebAssets {
  const raw = new Map(WEB_FILES.map((name) => [name, readFileSync(join(dir, name))] as const));
  const hash = createHash('sha256');
  for (const [name, body] of raw) hash.update(name).update(body);
  const version = hash.digest('hex').slice(0, 12);
  const html = readFileSync(join(dir, 'index.html'), 'utf8').replaceAll('%ASSETS%', `${ASSET_PREFIX}/${version}`);
  return {
    version,
    page: asset('index.html', Buffer.from(html)),
    files: new Map([...raw].map(([name, body]) => [name, asset(name, body)])),
  };
}

/** Bytes a first visit downloads: the page and every asset, gzipped where the browser accepts it. */
export function pageWeight(assets: WebAssets, gzip: boolean): number {
  const size = (a: WebAsset) => (gzip && a.gzip ? a.gzip.length : a.body.length);
  return [assets.page, ...assets.files.values()].reduce((sum, a) => sum + size(a), 0);
}
