/**
 * The apt proxy of sandboxes: an HTTP forward proxy that only talks to the
 * Debian archive. Package files (.deb) and by-hash index files never change
 * under a given name, so they are kept on disk and served from there to every
 * later sandbox and CI run; InRelease always goes to the archive.
 *
 * Run as a detached process by lib.ts:
 *   node proxy.js --listen 10.213.255.1 --port 3142 --cache /var/cache/kraftwerk/apt-proxy
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The archive hosts a sandbox's sources.list uses. */
export const DEBIAN_ARCHIVE_HOSTS: readonly string[] = ['deb.debian.org'];

export interface AptProxyOptions {
  cacheDir: string;
  allowedHosts?: readonly string[];
  /** Where to connect for an allowed host (tests point the archive at a local server). */
  upstreamFor?: (hostname: string) => { host: string; port: number };
  log?: (line: string) => void;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Conditional and partial-request headers are dropped for cacheable files: the cache needs the whole file. */
const CONDITIONAL = new Set(['range', 'if-range', 'if-modified-since', 'if-none-match', 'if-match', 'if-unmodified-since']);

/** Paths that may become cache file names: archive paths only, no `..`, nothing a shell or a file system trips over. */
const SAFE_PATH = /^\/[A-Za-z0-9._+~%-]+(?:\/[A-Za-z0-9._+~%-]+)*$/;

/**
 * Files whose content never changes under their name: packages, and index
 * files fetched by their hash (apt asks for Packages and Translation files
 * as .../by-hash/SHA256/<hash>). Only InRelease changes, and it is small.
 */
export function isImmutable(pathname: string): boolean {
  return /\.u?deb$/.test(pathname) || /\/by-hash\/SHA(256|512)\/[0-9a-f]{64,128}$/.test(pathname);
}

export type ProxyDecision =
  | { kind: 'deny'; status: number; reason: string }
  | { kind: 'cache'; url: URL; cacheFile: string }
  | { kind: 'pass'; url: URL };

/** What the proxy does with a request line; pure, so it is tested without sockets. */
export function decide(
  method: string | undefined,
  rawUrl: string | undefined,
  cacheDir: string,
  allowedHosts: readonly string[] = DEBIAN_ARCHIVE_HOSTS,
): ProxyDecision {
  if (method !== 'GET' && method !== 'HEAD') {
    return { kind: 'deny', status: 405, reason: `method ${method} is not forwarded (GET and HEAD only)` };
  }
  let url: URL;
  try {
    url = new URL(rawUrl ?? '');
  } catch {
    return { kind: 'deny', status: 400, reason: 'a proxy request needs an absolute http:// URL' };
  }
  if (url.protocol !== 'http:' || (url.port !== '' && url.port !== '80')) {
    return { kind: 'deny', status: 403, reason: 'only http:// on port 80 is forwarded' };
  }
  if (!allowedHosts.includes(url.hostname)) {
    return {
      kind: 'deny',
      status: 403,
      reason: `${url.hostname} is not forwarded: the sandbox apt proxy only reaches ${allowedHosts.join(', ')}`,
    };
  }
  const segments = url.pathname.split('/');
  if (isImmutable(url.pathname) && SAFE_PATH.test(url.pathname) && !segments.includes('..') && !segments.includes('.')) {
    return { kind: 'cache', url, cacheFile: join(cacheDir, url.hostname, url.pathname) };
  }
  return { kind: 'pass', url };
}

function forwardHeaders(headers: http.IncomingHttpHeaders, dropConditional: boolean): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || (dropConditional && CONDITIONAL.has(k))) continue;
    out[k] = v;
  }
  return out;
}

export function createAptProxy(options: AptProxyOptions): http.Server {
  const allowed = options.allowedHosts ?? DEBIAN_ARCHIVE_HOSTS;
  const upstreamFor = options.upstreamFor ?? ((hostname: string) => ({ host: hostname, port: 80 }));
  const log = options.log ?? (() => {});
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  const upstream = (
    url: URL,
    method: string,
    headers: http.OutgoingHttpHeaders,
    onResponse: (res: http.IncomingMessage) => void,
    onError: (e: Error) => void,
  ) => {
    const { host, port } = upstreamFor(url.hostname);
    const req = http.request(
      { host, port, method, path: `${url.pathname}${url.search}`, headers: { ...headers, host: url.host }, agent },
      onResponse,
    );
    req.setTimeout(60_000, () => req.destroy(new Error('the archive did not answer within 60 s')));
    req.on('error', onError);
    req.end();
    return req;
  };

  const fail = (res: http.ServerResponse, status: number, reason: string) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(`${reason}\n`);
  };

  const serveCached = async (req: http.IncomingMessage, res: http.ServerResponse, file: string): Promise<boolean> => {
    let size: number;
    try {
      const s = await stat(file);
      if (!s.isFile()) return false;
      size = s.size;
    } catch {
      return false;
    }
    const type = /\.u?deb$/.test(file) ? 'application/vnd.debian.binary-package' : 'application/octet-stream';
    res.writeHead(200, { 'content-type': type, 'content-length': size });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).on('error', () => res.destroy()).pipe(res);
    return true;
  };

  const fetchAndCache = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, file: string) => {
    const up = upstream(
      url,
      req.method!,
      forwardHeaders(req.headers, true),
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, forwardHeaders(upRes.headers, false));
        const expected = Number(upRes.headers['content-length']);
        if (req.method !== 'GET' || upRes.statusCode !== 200 || !Number.isFinite(expected)) {
          log(`PASS ${upRes.statusCode} ${url.href}`);
          upRes.pipe(res);
          return;
        }
        log(`MISS ${upRes.statusCode} ${url.href}`);
        void (async () => {
          const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.part`;
          let received = 0;
          let sink: ReturnType<typeof createWriteStream> | undefined;
          try {
            await mkdir(dirname(file), { recursive: true });
            sink = createWriteStream(tmp);
            sink.on('error', () => {
              sink = undefined;
            });
          } catch {
            sink = undefined;
          }
          upRes.on('data', (chunk: Buffer) => {
            received += chunk.length;
            sink?.write(chunk);
            if (!res.write(chunk)) {
              upRes.pause();
              res.once('drain', () => upRes.resume());
            }
          });
          upRes.on('end', () => {
            res.end();
            if (!sink) return;
            const done = sink;
            done.end(() => {
              // Only a complete file enters the cache: apt would reject a short one forever.
              const keep = received === expected;
              void (keep ? rename(tmp, file) : unlink(tmp)).catch(() => unlink(tmp).catch(() => {}));
            });
          });
          upRes.on('error', () => {
            res.destroy();
            sink?.destroy();
            void unlink(tmp).catch(() => {});
          });
          res.on('close', () => {
            if (!res.writableFinished) upRes.destroy();
          });
        })();
      },
      (e) => {
        log(`FAIL ${url.href}: ${e.message}`);
        fail(res, 502, `apt proxy: ${url.hostname}: ${e.message}`);
      },
    );
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
  };

  const pass = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    const up = upstream(
      url,
      req.method!,
      forwardHeaders(req.headers, false),
      (upRes) => {
        log(`PASS ${upRes.statusCode} ${url.href}`);
        res.writeHead(upRes.statusCode ?? 502, forwardHeaders(upRes.headers, false));
        upRes.pipe(res);
      },
      (e) => {
        log(`FAIL ${url.href}: ${e.message}`);
        fail(res, 502, `apt proxy: ${url.hostname}: ${e.message}`);
      },
    );
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
  };

  const server = http.createServer((req, res) => {
    const d = decide(req.method, req.url, options.cacheDir, allowed);
    if (d.kind === 'deny') {
      log(`DENY ${d.status} ${req.method} ${req.url}`);
      fail(res, d.status, d.reason);
      return;
    }
    if (d.kind === 'pass') {
      pass(req, res, d.url);
      return;
    }
    void serveCached(req, res, d.cacheFile).then((hit) => {
      if (hit) log(`HIT 200 ${d.url.href}`);
      else fetchAndCache(req, res, d.url, d.cacheFile);
    });
  });
  server.on('close', () => agent.destroy());
  return server;
}

function parseArgs(argv: string[]): { listen: string; port: number; cache: string } {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    const v = i >= 0 ? argv[i + 1] : undefined;
    if (!v) throw new Error(`missing ${flag}`);
    return v;
  };
  return { listen: get('--listen'), port: Number(get('--port')), cache: get('--cache') };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  await mkdir(args.cache, { recursive: true });
  const server = createAptProxy({
    cacheDir: args.cache,
    log: (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`),
  });
  // apt keeps connections open; a half-written cache file is only ever a `.part`, so exiting at once is safe.
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
  server.listen(args.port, args.listen, () => {
    process.stdout.write(`${new Date().toISOString()} listening on ${args.listen}:${args.port}\n`);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`apt proxy: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
