import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { createSite } from '../../core/config/site.ts';
import {
  certonlyCommand,
  issueReason,
  parseCertificateProbe,
  parseOpensslDate,
  probeCertificateCommand,
  removeTlsCommand,
  renewalHookFile,
  selfSignedCommand,
  summarizeCertbotError,
} from '../../plugins/tls/commands.ts';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, tlsSettings, type TlsSettings } from '../../plugins/tls/settings.ts';

function settingsFor(config: Record<string, unknown>): TlsSettings | undefined {
  const site = createSite(configSchema.parse({ domain: 'shop.example.com', ...config }), {
    configFile: '/p/kraftwerk.yaml',
    sourceDir: '/p',
    name: 'shop',
  });
  return tlsSettings(site);
}

describe('tls settings', () => {
  it('is off by default and with tls: false', () => {
    assert.equal(settingsFor({}), undefined);
    assert.equal(settingsFor({ tls: false }), undefined);
  });

  it("covers the canonical domain first, then other domains and aliases, from Let's Encrypt by default", () => {
    const s = settingsFor({ domain: ['shop.example.com', 'shop.example.org'], aliases: ['www.shop.example.com', 'shop.example.org'], tls: {} })!;
    assert.deepEqual(s.domains, ['shop.example.com', 'shop.example.org', 'www.shop.example.com']);
    assert.equal(s.server, LETSENCRYPT_PRODUCTION);
    assert.equal(s.paths.fullchain, '/etc/letsencrypt/live/shop/fullchain.pem');
    assert.equal(s.paths.privateKey, '/etc/letsencrypt/live/shop/privkey.pem');
    assert.equal(s.webroot, '/var/lib/kraftwerk/acme/shop');
    assert.equal(s.hstsMaxAge, 0);
  });

  it('uses the staging server, or any ACME server, and HSTS as asked', () => {
    assert.equal(settingsFor({ tls: { staging: true } })!.server, LETSENCRYPT_STAGING);
    assert.equal(settingsFor({ tls: { acme_server: 'https://ca.internal:14000/dir' } })!.server, 'https://ca.internal:14000/dir');
    assert.equal(settingsFor({ tls: { hsts: true } })!.hstsMaxAge, 31_536_000);
    assert.equal(settingsFor({ tls: { hsts: 600 } })!.hstsMaxAge, 600);
  });

  it('refuses staging together with acme_server, naming the key', () => {
    assert.throws(
      () => settingsFor({ tls: { staging: true, acme_server: 'https://ca.internal/dir' } }),
      (err: unknown) => err instanceof ConfigError && err.key === 'tls.staging' && /acme_server/.test(err.message),
    );
  });

  it('refuses wildcard names for ACME (HTTP-01 cannot validate them), allows them self-signed', () => {
    assert.throws(() => settingsFor({ aliases: ['*.shop.example.com'], tls: {} }), /wildcard/);
    const s = settingsFor({ aliases: ['*.shop.example.com'], tls: { provider: 'self-signed' } })!;
    assert.deepEqual(s.domains, ['shop.example.com', '*.shop.example.com']);
    assert.equal(s.paths.fullchain, '/etc/kraftwerk/tls/shop/fullchain.pem');
    assert.equal(s.webroot, undefined);
  });
});

describe('certbot commands', () => {
  const s = settingsFor({ aliases: ['www.shop.example.com'], tls: { email: 'ops@example.com', acme_server: 'https://10.213.0.1:14000/dir' } })!;

  it('certonly: webroot, pinned lineage, every name, never interactive', () => {
    assert.equal(
      certonlyCommand(s).text,
      'install -d -m 0755 /var/lib/kraftwerk/acme/shop && certbot certonly --non-interactive --agree-tos --webroot --webroot-path /var/lib/kraftwerk/acme/shop --cert-name shop --server https://10.213.0.1:14000/dir --email ops@example.com -d shop.example.com -d www.shop.example.com',
    );
  });

  it('certonly: expands for added names, replaces a lineage from another server, registers without email', () => {
    const noEmail = { ...s, email: undefined };
    const text = certonlyCommand(noEmail, { expand: true, force: true }).text;
    assert.match(text, / --register-unsafely-without-email --expand --force-renewal --break-my-certs -d shop\.example\.com /);
    assert.doesNotMatch(text, /--email/);
  });

  it('the renewal hook checks the nginx configuration before reloading', () => {
    const hook = renewalHookFile();
    assert.equal(hook.path, '/etc/letsencrypt/renewal-hooks/deploy/kraftwerk-reload-nginx');
    assert.equal(hook.mode, 0o755);
    assert.match(hook.content, /^#!\/bin\/sh\n[\s\S]*set -e\nnginx -t -q\nservice nginx reload\n$/);
  });

  it('removal deletes the certbot lineage, self-signed files and webroot of this site only', () => {
    const text = removeTlsCommand('shop').text;
    assert.match(text, /certbot delete --non-interactive --cert-name shop/);
    assert.match(text, /rm -rf \/etc\/letsencrypt\/live\/shop \/etc\/letsencrypt\/archive\/shop \/etc\/letsencrypt\/renewal\/shop\.conf/);
    assert.match(text, /for d in \/etc\/kraftwerk\/tls\/shop \/var\/lib\/kraftwerk\/acme\/shop;/);
  });

  it('removal of one provider’s files leaves the other’s', () => {
    const selfSignedOnly = removeTlsCommand('shop', { letsencrypt: false, selfSigned: true }).text;
    assert.doesNotMatch(selfSignedOnly, /certbot|letsencrypt|acme/);
    assert.match(selfSignedOnly, /for d in \/etc\/kraftwerk\/tls\/shop;/);
    const letsencryptOnly = removeTlsCommand('shop', { letsencrypt: true, selfSigned: false }).text;
    assert.match(letsencryptOnly, /certbot delete/);
    assert.match(letsencryptOnly, /for d in \/var\/lib\/kraftwerk\/acme\/shop;/);
    assert.doesNotMatch(letsencryptOnly, /kraftwerk\/tls/);
  });
});

describe('certificate probe', () => {
  it('reads a certificate made by the self-signed command (both run here for real)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-tls-unit-'));
    const base = settingsFor({ aliases: ['www.shop.example.com'], tls: { provider: 'self-signed' } })!;
    const s: TlsSettings = { ...base, paths: { fullchain: `${dir}/tls/fullchain.pem`, privateKey: `${dir}/tls/privkey.pem` } };
    const sh = (text: string) => execFileSync('sh', ['-c', text], { encoding: 'utf8' });

    const missing = parseCertificateProbe(sh(probeCertificateCommand(s).text));
    assert.equal(missing.exists, false);
    assert.equal(issueReason(s, missing), 'no certificate yet');

    sh(selfSignedCommand(s, 90).text);
    assert.equal(statSync(s.paths.privateKey).mode & 0o777, 0o600, 'the private key is for root only');
    assert.equal(statSync(path.dirname(s.paths.privateKey)).mode & 0o777, 0o700);
    const state = parseCertificateProbe(sh(probeCertificateCommand(s).text));
    assert.equal(state.exists, true);
    assert.deepEqual(state.domains, ['shop.example.com', 'www.shop.example.com']);
    assert.equal(state.issuer, 'CN = shop.example.com');
    assert.match(state.serial ?? '', /^[0-9A-F]+$/);
    const days = (state.notAfter!.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 89 && days <= 90, `expires in 90 days, found ${days}`);
    assert.equal(issueReason(s, state), undefined);
  });

  it('reads certbot, the renewal server and how renewal runs', () => {
    const state = parseCertificateProbe(
      [
        'certbot=1',
        'notAfter=Feb 23 17:21:50 2027 GMT',
        'serial=6fe9dd2f48',
        'issuer=CN = Pebble Intermediate CA 5dfc48',
        'X509v3 Subject Alternative Name: ',
        '    DNS:shop.example.com, DNS:www.shop.example.com',
        'cert=1',
        'server=https://10.213.0.1:14000/dir',
        'cronfile=1',
        '',
      ].join('\n'),
    );
    assert.deepEqual(state, {
      certbot: true,
      exists: true,
      domains: ['shop.example.com', 'www.shop.example.com'],
      notAfter: new Date('2027-02-23T17:21:50Z'),
      serial: '6FE9DD2F48',
      issuer: 'CN = Pebble Intermediate CA 5dfc48',
      server: 'https://10.213.0.1:14000/dir',
      renewal: { cronFile: true, cronRunning: false },
    });
  });

  it('parses openssl dates, including single-digit days', () => {
    assert.deepEqual(parseOpensslDate('Mar  1 00:00:05 2027 GMT'), new Date('2027-03-01T00:00:05Z'));
    assert.equal(parseOpensslDate('2027-03-01'), undefined);
  });
});

describe('when to issue', () => {
  const s = settingsFor({ aliases: ['www.shop.example.com'], tls: { acme_server: 'https://ca.test/dir' } })!;
  const now = new Date('2026-11-25T00:00:00Z');
  const fresh = {
    certbot: true,
    exists: true,
    domains: ['shop.example.com', 'www.shop.example.com'],
    notAfter: new Date('2027-02-20T00:00:00Z'),
    server: 'https://ca.test/dir',
  };

  it('not while the certificate covers every name, comes from the configured server and has 30 days left', () => {
    assert.equal(issueReason(s, fresh, now), undefined);
  });

  it('for an added or removed name, another server, or a near expiry', () => {
    assert.equal(issueReason(s, { ...fresh, domains: ['shop.example.com'] }, now), 'new domain www.shop.example.com');
    assert.equal(issueReason(s, { ...fresh, domains: [...fresh.domains, 'old.example.com'] }, now), 'domain old.example.com removed');
    assert.equal(issueReason(s, { ...fresh, server: 'https://other/dir' }, now), 'ACME server changed from https://other/dir');
    assert.equal(issueReason(s, { ...fresh, notAfter: new Date('2026-12-10T00:00:00Z') }, now), 'certificate expires in 15 days');
    assert.equal(issueReason(s, { ...fresh, notAfter: new Date('2026-11-01T00:00:00Z') }, now), 'certificate expired');
  });
});

describe('certbot errors', () => {
  it('keeps the CA’s problem for each failing domain (certbot 2.1 output)', () => {
    const out = `Account registered.
Requesting a certificate for x.example.com and 1 more domain

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: x.example.com
  Type:   connection
  Detail: Get "http://x.example.com/.well-known/acme-challenge/Ac24": dial tcp 10.213.0.9:80: connect: connection refused

  Domain: www.x.example.com
  Type:   unauthorized
  Detail: 203.0.113.7: Invalid response from http://www.x.example.com/.well-known/acme-challenge/Ac25: 404

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot.

Saving debug log to /var/log/letsencrypt/letsencrypt.log
Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.`;
    assert.equal(
      summarizeCertbotError(out),
      'x.example.com: connection: Get "http://x.example.com/.well-known/acme-challenge/Ac24": dial tcp 10.213.0.9:80: connect: connection refused\n' +
        'www.x.example.com: unauthorized: 203.0.113.7: Invalid response from http://www.x.example.com/.well-known/acme-challenge/Ac25: 404',
    );
  });

  it('falls back to the last lines for errors outside validation (rate limits, an unreachable CA)', () => {
    const out = `Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for x.example.com
An unexpected error occurred:
Error creating new order :: too many certificates (5) already issued for this exact set of domains in the last 168 hours
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.`;
    assert.equal(
      summarizeCertbotError(out),
      'An unexpected error occurred:\nError creating new order :: too many certificates (5) already issued for this exact set of domains in the last 168 hours',
    );
  });
});
