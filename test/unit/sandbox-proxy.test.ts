import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAptProxy, decide } from '../../tools/sandbox/proxy.ts';

describe('apt proxy decisions', () => {
  const cache = '/c';
  it('caches package files by their archive path', () => {
    const d = decide('GET', 'http://deb.debian.org/debian/pool/main/n/nginx/nginx_1.22.1-9%2bdeb12u1_amd64.deb', cache);
    assert.equal(d.kind, 'cache');
    assert.equal(d.kind === 'cache' && d.cacheFile, '/c/deb.debian.org/debian/pool/main/n/nginx/nginx_1.22.1-9%2bdeb12u1_amd64.deb');
  });

  it('passes index files through (they change), but caches those fetched by hash', () => {
    assert.equal(decide('GET', 'http://deb.debian.org/debian/dists/bookworm/InRelease', cache).kind, 'pass');
    assert.equal(decide('GET', 'http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz', cache).kind, 'pass');
    const hash = 'ab'.repeat(32);
    assert.equal(decide('GET', `http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/${hash}`, cache).kind, 'cache');
    assert.equal(decide('GET', 'http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/short', cache).kind, 'pass');
  });

  it('refuses other hosts, other ports, CONNECT, writes and relative URLs', () => {
    const denied = (m: string, u: string) => {
      const d = decide(m, u, cache);
      assert.equal(d.kind, 'deny', `${m} ${u}`);
      return d.kind === 'deny' ? d : undefined;
    };
    assert.match(denied('GET', 'http://evil.example/debian/x.deb')!.reason, /only reaches deb\.debian\.org/);
    assert.equal(denied('GET', 'http://deb.debian.org:8080/x.deb')!.status, 403);
    assert.equal(denied('GET', 'https://deb.debian.org/x.deb')!.status, 403);
    assert.equal(denied('CONNECT', 'deb.debian.org:443')!.status, 405);
    assert.equal(denied('POST', 'http://deb.debian.org/debian/x.deb')!.status, 405);
    assert.equal(denied('GET', '/debian/x.deb')!.status, 400);
  });

  it('never turns an odd path into a cache file outside the cache', () => {
    for (const u of [
      'http://deb.debian.org/debian/../../etc/x.deb',
      'http://deb.debian.org/debian/%2e%2e/x.deb',
      'http://deb.debian.org/debian/a;b.deb',
    ]) {
      const d = decide('GET', u, cache);
      if (d.kind === 'cache') {
        assert.ok(d.cacheFile.startsWith('/c/deb.debian.org/'), u);
        assert.ok(!d.cacheFile.includes('..'), u);
      }
    }
  });
});

describe('apt proxy against a local stand-in for the archive', () => {
  let archive: http.Server;
  let proxy: http.Server;
  let proxyPort = 0;
  let cacheDir = '';
  const archiveHits: string[] = [];
  const deb = Buffer.alloc(200_000, 7);

  before(async () => {
    cacheDir = mkdtempSync(path.join(tmpdir(), 'kw-aptproxy-'));
    archive = http.createServer((req, res) => {
      archiveHits.push(`${req.method} ${req.url} host=${req.headers.host} range=${req.headers.range ?? ''}`);
      if (req.url === '/debian/pool/main/h/hello/hello_1_amd64.deb') {
        res.writeHead(200, { 'content-length': deb.length });
        res.end(req.method === 'HEAD' ? undefined : deb);
      } else if (req.url === '/debian/dists/bookworm/InRelease') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('release v1');
      } else {
        res.writeHead(404);
        res.end('not found');
      }
    });
    await new Promise<void>((r) => archive.listen(0, '127.0.0.1', r));
    const archivePort = (archive.address() as AddressInfo).port;
    proxy = createAptProxy({ cacheDir, upstreamFor: () => ({ host: '127.0.0.1', port: archivePort }) });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    proxyPort = (proxy.address() as AddressInfo).port;
  });

  after(async () => {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
    archive.closeAllConnections();
    await new Promise((r) => archive.close(r));
    rmSync(cacheDir, { recursive: true, force: true });
  });

  const get = (url: string, headers: http.OutgoingHttpHeaders = {}) =>
    new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'GET', path: url, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });

  it('downloads a .deb once, then serves it from disk', async () => {
    const url = 'http://deb.debian.org/debian/pool/main/h/hello/hello_1_amd64.deb';
    const first = await get(url, { range: 'bytes=100-' });
    assert.equal(first.status, 200);
    assert.ok(first.body.equals(deb), 'the whole file, even when apt asked for a range');
    assert.match(archiveHits.at(-1)!, /host=deb\.debian\.org range=$/);
    const file = path.join(cacheDir, 'deb.debian.org/debian/pool/main/h/hello/hello_1_amd64.deb');
    for (let i = 0; i < 50 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(readFileSync(file).equals(deb));
    const hitsBefore = archiveHits.length;
    const second = await get(url);
    assert.equal(second.status, 200);
    assert.ok(second.body.equals(deb));
    assert.equal(archiveHits.length, hitsBefore, 'the archive was not asked again');
  });

  it('passes index files through every time and never caches a 404', async () => {
    const hitsBefore = archiveHits.length;
    assert.equal((await get('http://deb.debian.org/debian/dists/bookworm/InRelease')).body.toString(), 'release v1');
    assert.equal((await get('http://deb.debian.org/debian/dists/bookworm/InRelease')).body.toString(), 'release v1');
    assert.equal(archiveHits.length, hitsBefore + 2);
    assert.equal((await get('http://deb.debian.org/debian/pool/main/m/missing/missing_1_amd64.deb')).status, 404);
    assert.ok(!existsSync(path.join(cacheDir, 'deb.debian.org/debian/pool/main/m/missing')));
  });

  it('refuses hosts other than the Debian archive', async () => {
    const hitsBefore = archiveHits.length;
    const r = await get('http://example.com/x.deb');
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /only reaches deb\.debian\.org/);
    assert.equal(archiveHits.length, hitsBefore);
  });
});
