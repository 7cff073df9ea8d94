// The benchmark's response bodies, shared by the origin (and so bare-node) and nginx-static,
// which must all serve the same bytes for a size.
import crypto from 'node:crypto';

/** Printable, deterministic, incompressible-looking bytes: base64 of a seeded hash stream. */
export function makeBody(bytes) {
  const chunks = [];
  let total = 0;
  for (let i = 0; total < bytes; i++) {
    const c = crypto.createHash('sha512').update(`sidecache-bench-${bytes}-${i}`).digest('base64');
    chunks.push(c);
    total += c.length;
  }
  return Buffer.from(chunks.join('').slice(0, bytes), 'latin1');
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];

/**
 * A deterministic HTML page of exactly `bytes` bytes that compresses about as a real listing
 * page does (repeated markup, varying numbers and words; gzip keeps about a seventh of 16-64 KiB), for
 * the compression rows: the incompressible bodies above would leave gzip nothing to do.
 */
export function makeHtmlBody(bytes) {
  const parts = ['<!doctype html>\n<html><head><meta charset="utf-8"><title>sidecache bench</title></head><body><ul>\n'];
  let total = parts[0].length;
  for (let i = 0; total < bytes; i++) {
    const h = crypto.createHash('sha1').update(`html-${i}`).digest();
    const line = `<li class="item"><a href="/product/${h.readUInt32BE(0) % 100000}">${WORDS[h[4] % WORDS.length]} ${WORDS[h[5] % WORDS.length]} ${i}</a> <span class="price">${(h.readUInt16BE(6) / 100).toFixed(2)}</span></li>\n`;
    parts.push(line);
    total += line.length;
  }
  return Buffer.from(parts.join('').slice(0, bytes), 'latin1');
}
