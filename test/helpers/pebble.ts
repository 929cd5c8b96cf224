/**
 * A real ACME server for the TLS tests: Debian's `pebble` with
 * `pebble-challtestsrv` as its DNS. The mock DNS answers every name with the
 * address of the site under test (a sandbox, or 127.0.0.1), so pebble's HTTP-01
 * validation reaches that site's port 80 (or `httpPort`).
 *
 * Debian's package ships no certificate for pebble's own HTTPS listener, so the
 * helper makes a throwaway CA with openssl and signs one for the listen
 * address; ACME clients must trust `apiCaFile` (certbot: REQUESTS_CA_BUNDLE,
 * or the system store on a throwaway server). Certificates pebble issues chain
 * to a different root, regenerated on every start: `issuingRoot()`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PEBBLE = '/usr/bin/pebble';
const CHALLTESTSRV = '/usr/bin/pebble-challtestsrv';
const START_TIMEOUT_MS = 15_000;

export interface PebbleOptions {
  /** Address pebble's ACME API listens on: the host side of a sandbox's network, or 127.0.0.1. */
  listenAddress?: string;
  /** Address the mock DNS gives for every name (the server that answers the challenges). */
  siteAddress?: string;
  /** Port pebble connects to for HTTP-01 (80 for a real site; any port for a local test server). */
  httpPort?: number;
}

export interface Pebble {
  /** ACME directory URL, for `tls.acme_server`. */
  directoryUrl: string;
  /** PEM of the CA of pebble's own HTTPS certificate: ACME clients must trust it. */
  apiCaPem: string;
  apiCaFile: string;
  /** PEM of the root that pebble's issued certificates chain to (from its management interface). */
  issuingRoot(): Promise<string>;
  /** Make the mock DNS answer `host` with `address` instead of the default. */
  setAddress(host: string, address: string): Promise<void>;
  /** Back to the default answer for `host`. */
  clearAddress(host: string): Promise<void>;
  /** Everything pebble and the mock DNS printed, for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

/** Why this machine cannot run pebble, or undefined when it can. */
export function pebbleUnavailable(): string | undefined {
  for (const bin of [PEBBLE, CHALLTESTSRV]) {
    if (!existsSync(bin)) return `${bin} is not installed (apt-get install pebble)`;
  }
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return 'openssl is not installed (apt-get install openssl)';
  }
  return undefined;
}

/** A port free for TCP on `address` (and for UDP too when `udp`), so the mock DNS can take both. */
async function freePort(address: string, udp = false): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.on('error', reject);
      server.listen(0, address, () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    if (!udp) return port;
    const free = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, address, () => socket.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port on ${address}`);
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA and a server certificate for pebble's HTTPS listener, valid for `address` and localhost. */
function makeApiCertificate(dir: string, address: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=Kraftwerk test ACME CA', '-keyout', 'ca.key', '-out', 'ca.pem'], dir);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=pebble', '-keyout', 'api.key', '-out', 'api.csr'], dir);
  writeFileSync(join(dir, 'api.ext'), `subjectAltName=IP:${address},IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', 'api.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'api.ext', '-out', 'api.pem'], dir);
}

function get(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function post(url: string, data: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end(JSON.stringify(data));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll until `check` resolves truthy, at most `timeoutMs`. */
async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000} s (${(last as Error | undefined)?.message ?? 'no answer'}):\n${log()}`);
}

export async function startPebble(options: PebbleOptions = {}): Promise<Pebble> {
  const listen = options.listenAddress ?? '127.0.0.1';
  const siteAddress = options.siteAddress ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'kw-pebble-'));
  const children: ChildProcess[] = [];
  let output = '';
  const record = (name: string, child: ChildProcess) => {
    children.push(child);
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk
          .split('\n')
          .filter(Boolean)
          .map((l) => `[${name}] ${l}\n`)
          .join('');
        // Bounded: a long test must not keep every line pebble ever printed.
        if (output.length > 200_000) output = output.slice(-100_000);
      });
    }
    child.on('exit', (code, signal) => (output += `[${name}] exited (${code ?? signal})\n`));
  };
  const log = () => output;

  const stop = async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    makeApiCertificate(dir, listen);
    const apiCaFile = join(dir, 'ca.pem');
    const apiCaPem = readFileSync(apiCaFile, 'utf8');
    const acmePort = await freePort(listen);
    const managementPort = await freePort('127.0.0.1');
    const dnsPort = await freePort('127.0.0.1', true);
    const challPort = await freePort('127.0.0.1');
    writeFileSync(
      join(dir, 'pebble.json'),
      JSON.stringify({
        pebble: {
          listenAddress: `${listen}:${acmePort}`,
          managementListenAddress: `127.0.0.1:${managementPort}`,
          certificate: join(dir, 'api.pem'),
          privateKey: join(dir, 'api.key'),
          httpPort: options.httpPort ?? 80,
          tlsPort: 443,
          ocspResponderURL: '',
          externalAccountBindingRequired: false,
        },
      }),
    );

    record(
      'dns',
      spawn(
        CHALLTESTSRV,
        [
          '-defaultIPv4', siteAddress,
          // No AAAA answers: pebble would otherwise try ::1 on this machine.
          '-defaultIPv6', '',
          '-dns01', `127.0.0.1:${dnsPort}`,
          '-http01', '',
          '-https01', '',
          '-tlsalpn01', '',
          '-management', `127.0.0.1:${challPort}`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    await waitFor('pebble-challtestsrv', START_TIMEOUT_MS, async () => (await post(`http://127.0.0.1:${challPort}/clear-a`, { host: 'ready.test.' })) === 200, log);

    record(
      'pebble',
      spawn(PEBBLE, ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`, '-strict=false'], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          // Validate at once instead of after a random pause of up to 15 s.
          PEBBLE_VA_NOSLEEP: '1',
          // Never reject a good nonce: certbot retries, but the test should not depend on it.
          PEBBLE_WFE_NONCEREJECT: '0',
          // Validate every order for real (renewals too), never reuse an earlier authorization.
          PEBBLE_AUTHZREUSE: '0',
        },
      }),
    );
    const directoryUrl = `https://${listen}:${acmePort}/dir`;
    await waitFor('pebble', START_TIMEOUT_MS, async () => (await get(directoryUrl, apiCaPem)).status === 200, log);

    const challtestsrv = (path: string, data: unknown) =>
      post(`http://127.0.0.1:${challPort}${path}`, data).then((status) => {
        if (status !== 200) throw new Error(`pebble-challtestsrv ${path} answered ${status}`);
      });
    const fqdn = (host: string) => (host.endsWith('.') ? host : `${host}.`);

    return {
      directoryUrl,
      apiCaPem,
      apiCaFile,
      async issuingRoot() {
        const { status, body } = await get(`https://127.0.0.1:${managementPort}/roots/0`, apiCaPem);
        if (status !== 200) throw new Error(`pebble /roots/0 answered ${status}`);
        return body;
      },
      setAddress: (host, address) => challtestsrv('/add-a', { host: fqdn(host), addresses: [address] }),
      clearAddress: (host) => challtestsrv('/clear-a', { host: fqdn(host) }),
      log,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
