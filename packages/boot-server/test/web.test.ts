import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { fastify, type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTENT_SECURITY_POLICY,
  defaultWebDir,
  loadWebAssets,
  pageWeight,
  registerWebPage,
  WEB_FILES,
  type WebAssets,
} from '../src/web/index.js';

// The fleet page's server half (assets from memory, headers) and its pure client helpers
// (web/timeline.js, plain JS the browser loads; imported here by URL as the browser would).

describe('fleet page assets and headers', () => {
  let app: FastifyInstance;
  let assets: WebAssets;

  beforeAll(async () => {
    assets = loadWebAssets();
    app = fastify();
    registerWebPage(app, assets);
    await app.ready();
  });
  afterAll(() => app.close());

  it('serves the page at / with a strict CSP, no caching without revalidation, and links to versioned assets', async () => {
    const response = await app.inject({ url: '/' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe|\*/);
    expect(response.headers['cache-control']).toBe('no-cache');
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.body).toContain(`src="/web/${assets.version}/app.js"`);
    expect(response.body).toContain(`href="/web/${assets.version}/app.css"`);
    expect(response.body).not.toContain('%ASSETS%');
    // No inline script or style for the CSP to refuse.
    expect(response.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i);
    expect((await app.inject({ url: '/web/' })).body).toBe(response.body);
  });

  it('answers a matching ETag with 304 and gzips for clients that accept it', async () => {
    const first = await app.inject({ url: `/web/${assets.version}/app.js`, headers: { 'accept-encoding': 'gzip, br' } });
    expect(first.statusCode).toBe(200);
    expect(first.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(first.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(first.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(first.rawPayload).equals(assets.files.get('app.js')!.body)).toBe(true);
    const again = await app.inject({ url: `/web/${assets.version}/app.js`, headers: { 'if-none-match': String(first.headers.etag) } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const plain = await app.inject({ url: `/web/${assets.version}/app.js` });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body).toBe(assets.files.get('app.js')!.body.toString());
  });

  it('serves only its own files, and only under the current version', async () => {
    for (const file of WEB_FILES) expect((await app.inject({ url: `/web/${assets.version}/${file}` })).statusCode, file).toBe(200);
    const stale = await app.inject({ url: '/web/000000000000/app.js?v=1' });
    expect(stale.statusCode).toBe(404);
    expect(stale.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'no asset /web/000000000000/app.js' } });
    expect(stale.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect((await app.inject({ url: `/web/${assets.version}/index.html` })).statusCode).toBe(404);
    expect((await app.inject({ url: `/web/${assets.version}/..%2fpackage.json` })).statusCode).toBe(404);
  });

  it('changes version when an asset changes, so cached copies are never stale', () => {
    expect(assets.version).toMatch(/^[0-9a-f]{12}$/);
    expect(loadWebAssets().version).toBe(assets.version);
  });

  it('stays small: the whole page under 11 KB gzipped, the figure README.md gives', () => {
    expect(pageWeight(assets, true)).toBeLessThan(11 * 1000);
    expect(pageWeight(assets, true)).toBeLessThan(pageWeight(assets, false));
  });
});

interface BootState {
  state: string;
  lastBoot?: number;
  gateSince?: number;
  gateWaitMs?: number;
  reason?: string;
}

interface TimelineEntry {
  type: string;
  event: { at: number | string; file?: string };
}

interface TimelineHelpers {
  readSseMessages(buffer: string): { messages: Array<{ event: string; data: any }>; rest: string };
  nextBootState(previous: object, type: string, event: object): BootState;
  bootStateOf(entries: object[]): { state: string; lastBoot?: number };
  describeEntry(type: string, event: object, boot?: object): Record<string, string> | null;
  mergeTimeline(stored: TimelineEntry[], live: TimelineEntry[]): TimelineEntry[];
  formatBytes(bytes: number): string;
}

describe('fleet page helpers (web/timeline.js)', () => {
  let t: TimelineHelpers;
  beforeAll(async () => {
    const load = (file: string) => import(pathToFileURL(join(defaultWebDir(), file)).href);
    t = { ...(await load('boot-state.js')), ...(await load('timeline.js')) } as TimelineHelpers;
  });

  it('reads event-stream messages across chunk boundaries and skips comments', () => {
    const stream = ': iot-tofu events\n\nevent: boot-complete\ndata: {"serial":"9f55bbfd","ms":1200,"at":5}\n\nevent: file-ser';
    const first = t.readSseMessages(stream);
    expect(first.messages).toEqual([{ event: 'boot-complete', data: { serial: '9f55bbfd', ms: 1200, at: 5 } }]);
    const second = t.readSseMessages(`${first.rest}ved\r\ndata: {"file":"x"}\r\n\r\n: keep-alive\n\n`);
    expect(second.messages).toEqual([{ event: 'file-served', data: { file: 'x' } }]);
    expect(second.rest).toBe('');
    expect(t.readSseMessages('event: x\ndata: {not json\n\n').messages).toEqual([]);
  });

  it('follows a boot through the gate: waiting, the wait measured at the offer, booted with its time', () => {
    let boot = t.nextBootState({}, 'dhcp-ignored', { reason: 'deferred', at: 1000 });
    boot = t.nextBootState(boot, 'dhcp-ignored', { reason: 'deferred', at: 3000 });
    expect(boot).toMatchObject({ state: 'waiting', gateSince: 1000 });
    const offer = t.describeEntry('offer-sent', { messageType: 'offer', at: 4500 }, boot);
    expect(offer).toMatchObject({ what: 'proxy offer', note: 'waited 3.5 s at the gate' });
    boot = t.nextBootState(boot, 'offer-sent', { at: 4500 });
    expect(boot).toMatchObject({ state: 'booting', gateWaitMs: 3500 });
    boot = t.nextBootState(boot, 'boot-complete', { ms: 9000, at: '1970-01-01T00:00:10.000Z' });
    expect(boot).toMatchObject({ state: 'booted', lastBoot: 10_000 });
    // The initramfs after the kernel does not make a booted Pi "booting" again.
    expect(t.nextBootState(boot, 'file-served', { at: 11_000 }).state).toBe('booted');
    expect(t.nextBootState(boot, 'file-served', { at: 200_000 }).state).toBe('booting');
    const stored = [
      { type: 'file-served', at: 1 },
      { type: 'boot-failed', reason: 'config.txt missing', at: 2 },
    ];
    expect(t.bootStateOf(stored)).toMatchObject({ state: 'failed' });
  });

  it('merges live events that came while a stored timeline loaded, without the ones it already holds', () => {
    const stored = [
      { type: 'offer-sent', event: { type: 'offer-sent', at: '1970-01-01T00:00:01.000Z' } },
      { type: 'file-served', event: { type: 'file-served', file: '9f55bbfd/start4.elf', at: '1970-01-01T00:00:02.000Z' } },
    ];
    const live = [
      { type: 'file-served', event: { file: '9f55bbfd/start4.elf', at: 2000 } },
      { type: 'file-served', event: { file: '9f55bbfd/kernel8.img', at: 2000 } },
      { type: 'boot-complete', event: { ms: 2500, at: 3500 } },
    ];
    const merged = t.mergeTimeline(stored, live);
    expect(merged.map((e) => `${e.type} ${e.event.file ?? ''}`)).toEqual([
      'offer-sent ',
      'file-served 9f55bbfd/start4.elf',
      'file-served 9f55bbfd/kernel8.img',
      'boot-complete ',
    ]);
    expect(t.bootStateOf(merged.map((e) => ({ type: e.type, ...e.event })))).toMatchObject({ state: 'booted', lastBoot: 3500 });
  });

  it('describes each file with bytes, time and retries, without the serial folder', () => {
    expect(
      t.describeEntry('file-served', { serial: '9f55bbfd', file: '9f55bbfd/kernel8.img', bytes: 3_000_000, ms: 1234, retries: 2, at: 1 }),
    ).toEqual({
      what: 'file served',
      file: 'kernel8.img',
      bytes: '2.9 MiB',
      time: '1.2 s',
      retries: '2',
      note: '',
    });
    const missing = { serial: '9f55bbfd', file: '9f55bbfd/config.txt', kind: 'missing', reason: 'config.txt missing', retries: 0, at: 1 };
    expect(t.describeEntry('transfer-failed', missing)).toMatchObject({ what: 'file missing', file: 'config.txt' });
    expect(t.describeEntry('transfer-started', { file: 'x', at: 1 })).toBeNull();
    expect(t.formatBytes(512)).toBe('512 B');
  });
});
