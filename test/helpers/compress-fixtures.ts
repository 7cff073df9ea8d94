// What the compression tests store: a page that compresses well, and its fields.
export const TEXT = Array.from({ length: 200 }, (_, i) => `<p>line ${i} of a page that compresses well</p>\n`).join('');
export const KEY = 'http://origin.test/page';
export const ON = { SIDECACHE_COMPRESS: 'true' };
export const LM = 'Thu, 01 Jan 2026 00:00:00 GMT';

export function html(extra: Record<string, string> = {}): Record<string, string> {
  return { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'max-age=60', etag: '"v1"', 'last-modified': LM, ...extra };
}
