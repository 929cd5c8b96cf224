/**
 * The tls plugin's certbot commands against a real ACME server (pebble) on
 * this machine: issuance through a webroot served over HTTP, the error a
 * failed validation produces, re-issuance for an added domain, and renewal
 * running the deploy hooks. certbot keeps its state in a temp folder here; the
 * sandbox e2e test (test/e2e/tls.test.ts) runs the same commands on a server.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { raw, sequence, type Script } from '../../core/index.ts';
import {
  certonlyCommand,
  issueReason,
  parseCertificateProbe,
  probeCertificateCommand,
  summarizeCertbotError,
} from '../../plugins/tls/commands.ts';
import type { TlsSettings } from '../../plugins/tls/settings.ts';
import { type Pebble, pebbleUnavailable, startPebble } from '../helpers/pebble.ts';

const certbotMissing = existsSync('/usr/bin/certbot') ? undefined : 'certbot is not installed (apt-get install certbot)';
const skip = pebbleUnavailable() ?? certbotMissing;

describe('tls: certbot against pebble', { skip }, () => {
  let pebble: Pebble;
  let web: Server;
  let dir: string;
  let settings: TlsSettings;
  let certbotDirs: string;

  /** Run a command as the plugin builds it, with certbot's state in the temp folder. */
  const run = (cmd: Script) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const script = sequence(raw(`certbot() { command certbot ${certbotDirs} "$@"; }`), cmd).text;
      execFile('sh', ['-c', script], { env: { ...process.env, REQUESTS_CA_BUNDLE: pebble.apiCaFile }, timeout: 120_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const probe = async (s = settings) => parseCertificateProbe((await run(probeCertificateCommand(s))).stdout);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kw-tls-'));
    const le = join(dir, 'letsencrypt');
    certbotDirs = `--config-dir ${le} --work-dir ${join(dir, 'work')} --logs-dir ${join(dir, 'logs')}`;
    const webroot = join(dir, 'webroot');
    // What nginx does for the site: serve the webroot at /.well-known/acme-challenge/ on the HTTP port.
    web = createServer((req, res) => {
      const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]!));
      const file = join(webroot, path);
      if (!path.startsWith('/.well-known/acme-challenge/') || !existsSync(file)) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    const httpPort = (web.address() as { port: number }).port;
    pebble = await startPebble({ httpPort });
    settings = {
      provider: 'letsencrypt',
      certName: 'shop',
      domains: ['shop.example.com', 'www.shop.example.com'],
      server: pebble.directoryUrl,
      email: 'ops@example.com',
      hstsMaxAge: 0,
      paths: { fullchain: join(le, 'live/shop/fullchain.pem'), privateKey: join(le, 'live/shop/privkey.pem') },
      webroot,
      renewalConf: join(le, 'renewal/shop.conf'),
    };
  });

  after(async () => {
    await pebble?.stop();
    await new Promise((r) => web?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('obtains a certificate for every domain, chained to pebble’s root', async () => {
    assert.equal(issueReason(settings, await probe()), 'no certificate yet');
    const res = await run(certonlyCommand(settings));
    assert.equal(res.code, 0, `certbot failed:\n${res.stderr}\n${pebble.log()}`);

    const state = await probe();
    assert.equal(state.exists, true);
    assert.deepEqual([...state.domains].sort(), [...settings.domains].sort());
    assert.match(state.issuer ?? '', /Pebble Intermediate CA/);
    assert.equal(state.server, pebble.directoryUrl);
    assert.equal(issueReason(settings, state), undefined, 'a fresh certificate needs nothing on the next deploy');

    const pems = readFileSync(settings.paths.fullchain, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
    const [leaf, intermediate] = pems.map((p) => new X509Certificate(p));
    const root = new X509Certificate(await pebble.issuingRoot());
    assert.ok(leaf!.checkIssued(intermediate!) && leaf!.verify(intermediate!.publicKey), 'leaf signed by the intermediate');
    assert.ok(intermediate!.verify(root.publicKey), 'intermediate signed by pebble’s root');
    assert.equal(leaf!.subjectAltName, 'DNS:shop.example.com, DNS:www.shop.example.com');
  });

  it('reports the CA’s problem when a domain does not point at the server, and keeps the certificate', async () => {
    const serial = (await probe()).serial;
    await pebble.setAddress('old.shop.example.com', '127.0.0.9');
    const failing = { ...settings, domains: [...settings.domains, 'old.shop.example.com'] };
    const res = await run(certonlyCommand(failing, { expand: true }));
    assert.notEqual(res.code, 0);
    const summary = summarizeCertbotError(`${res.stdout}\n${res.stderr}`);
    assert.match(summary, /^old\.shop\.example\.com: connection: .*127\.0\.0\.9/m, summary);
    assert.doesNotMatch(summary, /www\.shop\.example\.com/, 'only the failing name is reported');
    assert.equal((await probe()).serial, serial, 'the previous certificate stays');
  });

  it('re-issues with the added domain', async () => {
    const wider = { ...settings, domains: [...settings.domains, 'shop.example.org'] };
    assert.equal(issueReason(wider, await probe()), 'new domain shop.example.org');
    const res = await run(certonlyCommand(wider, { expand: true }));
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual([...(await probe()).domains].sort(), [...wider.domains].sort());
    assert.equal(issueReason(wider, await probe()), undefined);
  });

  it('renews from the stored renewal config and runs the deploy hooks', async () => {
    const before = (await probe()).serial;
    const hookDir = join(dir, 'letsencrypt/renewal-hooks/deploy');
    mkdirSync(hookDir, { recursive: true });
    const marker = join(dir, 'renewed');
    writeFileSync(join(hookDir, 'kraftwerk-test'), `#!/bin/sh\necho "$RENEWED_LINEAGE" > ${marker}\n`, { mode: 0o755 });
    const res = await run(raw('certbot renew --force-renewal --non-interactive --no-random-sleep-on-renew'));
    assert.equal(res.code, 0, res.stderr);
    assert.notEqual((await probe()).serial, before, 'a new certificate');
    assert.match(readFileSync(marker, 'utf8'), /live\/shop$/m);
  });
});
