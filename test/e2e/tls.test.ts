/**
 * HTTPS end to end: a sandbox server, a real ACME server (pebble) on this
 * machine's side of the sandbox's network, and its mock DNS answering the
 * site's names with the sandbox's address. The real CLI deploys; a real TLS
 * client on this machine checks what a visitor would get.
 *
 *   1. a name whose DNS points elsewhere: the deploy fails with the CA's error, the site serves HTTP
 *   2. without that name: certificate issued by pebble, HTTPS, HTTP → HTTPS in one hop
 *   3. an added alias: the next deploy re-issues the certificate with it
 *   4. certbot renew --force-renewal on the server: nginx serves the new certificate
 *   5. kraftwerk status shows the expiry
 *   6. provider: self-signed: a certificate made on the node, certbot's lineage removed
 *   7. tls: false: back to plain HTTP, the certificate is gone
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { raw, sh } from '../../core/shell/sh.ts';
import type { Remote } from '../../core/remote/remote.ts';
import { connectSsh } from '../../core/remote/ssh.ts';
import { sandboxTarget } from '../../tools/sandbox/lib.ts';
import { type Pebble, pebbleUnavailable, startPebble } from '../helpers/pebble.ts';
import { runCli, sandboxSkip, withPreparedSandbox } from './harness.ts';
import { setupRecipe } from './safe-helpers.ts';

const SANDBOX = 'tls-e2e';
const DOMAIN = 'shop.kraftwerk.test';
const WWW = `www.${DOMAIN}`;
const BROKEN = `old.${DOMAIN}`;
const ADDED = `new.${DOMAIN}`;

const APP = `def application(environ, start_response):
    body = ("shop over " + environ.get("HTTP_X_FORWARDED_PROTO", environ.get("wsgi.url_scheme", "?")) + "\\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** An HTTP(S) request to the sandbox's address with the site's name, as a browser whose DNS points there would send. */
function fetchFrom(address: string, url: string, ca?: string): Promise<Answer> {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const options = {
      host: address,
      port: https ? 443 : 80,
      path: `${u.pathname}${u.search}`,
      headers: { host: u.host },
      servername: u.hostname,
      ca,
      timeout: 10_000,
    };
    const req = (https ? httpsRequest : httpRequest)(options, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The certificate the server presents for `servername`, verified against `ca`. */
function peerCertificate(address: string, servername: string, ca: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: address, port: 443, servername, ca, timeout: 10_000 }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.on('timeout', () => socket.destroy(new Error('TLS handshake timed out')));
    socket.on('error', reject);
  });
}

function sanNames(cert: PeerCertificate): string[] {
  return (cert.subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim().replace(/^DNS:/, ''))
    .filter(Boolean)
    .sort();
}

function writeProject(dir: string, tls: unknown, aliases: string[]): void {
  const config = {
    package: 'shop',
    domain: DOMAIN,
    aliases,
    wsgi: 'app:application',
    healthcheck: { path: '/' },
    environ: { SHOP_NAME: 'tls e2e' },
    tls,
  };
  // JSON is YAML: no quoting questions for the URL.
  writeFileSync(path.join(dir, 'kraftwerk.yaml'), `${JSON.stringify(config, null, 2)}\n`);
}

describe('tls: HTTPS from a real ACME server', { skip: sandboxSkip() || pebbleUnavailable() }, () => {
  it('issues, redirects, re-issues, renews, reports, self-signs and turns off', { timeout: 30 * 60_000 }, async (t: TestContext) => {
    const project = mkdtempSync(path.join(tmpdir(), 'kw-tls-e2e-'));
    t.after(() => rmSync(project, { recursive: true, force: true }));
    writeFileSync(path.join(project, 'app.py'), APP);
    writeFileSync(path.join(project, 'requirements.txt'), '');

    // Starts from the node the other suites set up (one snapshot build for all); setup-node below adds certbot.
    await withPreparedSandbox(t, SANDBOX, setupRecipe(), async (sandbox) => {
      const pebble: Pebble = await startPebble({ listenAddress: sandbox.record.hostAddress, siteAddress: sandbox.address, httpPort: 80 });
      t.after(() => pebble.stop());
      const tls = { acme_server: pebble.directoryUrl, email: 'ops@example.com', hsts: 600 };
      const cli = async (...args: string[]) => {
        const r = await runCli(args, { cwd: project });
        t.diagnostic(`kraftwerk ${args.join(' ')} → exit ${r.code}`);
        return r;
      };
      const at = (url: string, ca?: string) => fetchFrom(sandbox.address, url, ca);

      const target = await sandboxTarget(SANDBOX);
      assert.ok(target);
      const remote: Remote = await connectSsh(target, { acceptNewHostKey: false });
      t.after(() => remote.close());

      writeProject(project, tls, [WWW, BROKEN]);
      const setup = await runCli(['setup-node', SANDBOX], { cwd: project, timeoutMs: 30 * 60_000 });
      assert.equal(setup.code, 0, `setup-node failed:\n${setup.stdout}\n${setup.stderr}`);
      assert.equal((await remote.exec(raw('command -v certbot'), { check: false })).code, 0, 'setup-node installed certbot for a site with tls');
      // The sandbox trusts the test CA of pebble's API, as a server trusts a company's private ACME CA.
      await remote.exec(sh`cat > /usr/local/share/ca-certificates/kraftwerk-test-acme.crt && update-ca-certificates >/dev/null`, {
        stdin: pebble.apiCaPem,
      });

      // 1. One name's DNS points at a machine where no web server runs: the CA cannot validate it.
      await pebble.setAddress(BROKEN, sandbox.record.hostAddress);
      const failed = await cli('deploy', SANDBOX);
      assert.equal(failed.code, 1, `the deploy reports the failed issuance:\n${failed.stdout}\n${failed.stderr}`);
      const failure = `${failed.stdout}\n${failed.stderr}`;
      t.diagnostic(`the user sees: ${failed.stderr.trim().split('\n').slice(-6).join(' | ')}`);
      assert.match(failure, new RegExp(`could not obtain a certificate for ${DOMAIN}, ${WWW}, ${BROKEN}`));
      assert.match(failure, new RegExp(`${BROKEN.replaceAll('.', '\\.')}: connection: `), 'the CA’s problem, per domain');
      assert.match(failure, /keeps serving over plain HTTP/);
      const plain = await at(`http://${DOMAIN}/`);
      assert.equal(plain.status, 200, 'the site serves over HTTP');
      assert.equal(plain.body, 'shop over http\n');
      await assert.rejects(peerCertificate(sandbox.address, DOMAIN, await pebble.issuingRoot()), /ECONNREFUSED/, 'nothing on 443 yet');

      // 2. Without that name: issued, HTTPS, redirects.
      writeProject(project, tls, [WWW]);
      const issued = await cli('deploy', SANDBOX);
      assert.equal(issued.code, 0, `deploy failed:\n${issued.stdout}\n${issued.stderr}\n${pebble.log().slice(-3000)}`);
      const root = await pebble.issuingRoot();
      const first = await peerCertificate(sandbox.address, DOMAIN, root);
      assert.deepEqual(sanNames(first), [DOMAIN, WWW].sort());
      assert.match(String(first.issuer.CN), /^Pebble Intermediate CA/);
      const secure = await at(`https://${DOMAIN}/`, root);
      assert.equal(secure.status, 200);
      assert.equal(secure.body, 'shop over https\n');
      assert.equal(secure.headers['strict-transport-security'], 'max-age=600');
      for (const name of [DOMAIN, WWW]) {
        const r = await at(`http://${name}/basket?item=7`);
        assert.equal(r.status, 301, `http://${name}/ redirects`);
        assert.equal(r.headers.location, `https://${DOMAIN}/basket?item=7`, 'to the canonical domain over HTTPS, in one hop');
      }
      const alias = await at(`https://${WWW}/basket`, root);
      assert.equal(alias.status, 301);
      assert.equal(alias.headers.location, `https://${DOMAIN}/basket`);

      // 3. An added alias: the next deploy re-issues with it.
      writeProject(project, tls, [WWW, ADDED]);
      const expanded = await cli('deploy', SANDBOX);
      assert.equal(expanded.code, 0, `deploy failed:\n${expanded.stdout}\n${expanded.stderr}`);
      const second = await peerCertificate(sandbox.address, ADDED, root);
      assert.deepEqual(sanNames(second), [DOMAIN, WWW, ADDED].sort());
      assert.notEqual(second.serialNumber, first.serialNumber);

      // 4. Renewal on the server, without the CLI: certbot's deploy hook reloads nginx.
      await remote.exec(raw('certbot renew --force-renewal --non-interactive --no-random-sleep-on-renew'), { timeoutMs: 5 * 60_000 });
      // The hook's `service nginx reload` returns before nginx's new workers have taken over:
      // give the reload a bounded moment, as a browser arriving a second later would see it.
      let renewed = await peerCertificate(sandbox.address, DOMAIN, root);
      for (let i = 0; i < 40 && renewed.serialNumber === second.serialNumber; i++) {
        await new Promise((r) => setTimeout(r, 250));
        renewed = await peerCertificate(sandbox.address, DOMAIN, root);
      }
      assert.notEqual(renewed.serialNumber, second.serialNumber, 'nginx serves the renewed certificate (within 10 s of the renewal)');
      assert.deepEqual(sanNames(renewed), [DOMAIN, WWW, ADDED].sort());

      // 5. kraftwerk status shows the expiry.
      await t.test('kraftwerk status shows the certificate expiry', async (st) => {
        const status = await cli('status', SANDBOX);
        if (/unknown command 'status'/.test(status.stderr)) return st.skip('the status command does not exist yet');
        assert.equal(status.code, 0, status.stderr);
        st.diagnostic(status.stdout.split('\n').filter((l) => l.trim().startsWith('tls')).join(' | '));
        const expiry = new Date(renewed.valid_to).toISOString().slice(0, 10);
        assert.match(status.stdout, new RegExp(expiry), `status names the expiry date ${expiry}:\n${status.stdout}`);
      });

      // 6. Self-signed instead: openssl makes the certificate on the node; certbot's lineage goes.
      writeProject(project, { provider: 'self-signed' }, [WWW, ADDED]);
      const selfSigned = await cli('deploy', SANDBOX);
      assert.equal(selfSigned.code, 0, `deploy failed:\n${selfSigned.stdout}\n${selfSigned.stderr}`);
      const ownPem = (await remote.exec(raw('cat /etc/kraftwerk/tls/shop/fullchain.pem'))).stdout;
      const own = await peerCertificate(sandbox.address, WWW, ownPem);
      assert.deepEqual(sanNames(own), [DOMAIN, WWW, ADDED].sort());
      assert.equal(own.issuer.CN, DOMAIN, 'issued by itself');
      assert.equal((await at(`https://${DOMAIN}/`, ownPem)).body, 'shop over https\n');
      const lineage = await remote.exec(raw('ls /etc/letsencrypt/live /etc/letsencrypt/renewal 2>/dev/null; true'));
      assert.doesNotMatch(lineage.stdout, /shop/, 'certbot no longer renews a certificate nobody serves');

      // 7. TLS off: plain HTTP again, nothing left to renew.
      writeProject(project, false, [WWW, ADDED]);
      const off = await cli('deploy', SANDBOX);
      assert.equal(off.code, 0, `deploy failed:\n${off.stdout}\n${off.stderr}`);
      const back = await at(`http://${DOMAIN}/`);
      assert.equal(back.status, 200);
      assert.equal(back.body, 'shop over http\n');
      await assert.rejects(peerCertificate(sandbox.address, DOMAIN, ownPem), /ECONNREFUSED/);
      const left = await remote.exec(raw('ls /etc/letsencrypt/live /etc/letsencrypt/renewal 2>/dev/null; ls -d /var/lib/kraftwerk/acme/* /etc/kraftwerk/tls/* 2>/dev/null; true'));
      assert.doesNotMatch(left.stdout, /tls|shop/, `certificates and webroot are gone:\n${left.stdout}`);
    });
  });
});
