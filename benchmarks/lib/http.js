// Small HTTP client helpers for readiness checks, cache warm-up and hit checks (not for load).
import http from 'node:http';
import { sleep, tailLog } from './processes.js';

/**
 * GET `url`; resolves { status, headers, bodyBytes, body } (body text only with `keepBody`) and
 * never rejects on HTTP errors.
 */
export function httpGet(url, { headers = {}, timeoutMs = 5000, agent = false, keepBody = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent, timeout: timeoutMs }, (res) => {
      let bodyBytes = 0;
      const chunks = [];
      res.on('data', (chunk) => {
        bodyBytes += chunk.length;
        if (keepBody) chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bodyBytes, body: keepBody ? Buffer.concat(chunks).toString() : undefined }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Polls GET `url` until it answers 200, for at most `timeoutMs`. Throws with the process log's
 * tail when the process `h` exits first or time runs out.
 */
export async function waitForOk(url, { timeoutMs = 20_000, h } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (h && !h.isAlive()) {
      const { code, signal } = await h.exited;
      throw new Error(`${h.name} exited (code ${code}, signal ${signal}) before ${url} answered 200:\n${tailLog(h)}`);
    }
    try {
      const r = await httpGet(url, { timeoutMs: 1000 });
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (err) {
      last = err.code ?? err.message;
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${last})${h ? `:\n${tailLog(h)}` : ''}`);
}

/**
 * Scrapes a sidecar's Prometheus /metrics once; returns value(name): the sum of every sample of
 * that metric over its labels, or null when it is absent (or the scrape failed).
 */
export async function scrapeMetrics(adminUrl, timeoutMs = 5000) {
  let text = '';
  try {
    text = await (await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) })).text();
  } catch {
    // value() answers null
  }
  return (name) => {
    let sum = null;
    for (const line of text.split('\n')) {
      if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  };
}
