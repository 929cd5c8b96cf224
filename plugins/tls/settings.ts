/**
 * The settings of the tls plugin: `tls:` in kraftwerk.yaml, and what the
 * plugin derives from them. Where the values end up:
 *
 *     key                         reaches                                    checked as
 *     tls.email, tls.acme_server  certbot argv (quoted), its renewal conf    an email address, an https URL
 *     tls.hsts                    nginx add_header                           an integer
 */
import { ConfigError, type Site, settingsOf, z } from '../../core/index.ts';

const tls = z.union(
  [
    z.literal(false),
    z.strictObject({
      email: z.email('an email address').optional().describe('Contact address for the certificate authority'),
      provider: z.enum(['letsencrypt', 'self-signed']).default('letsencrypt'),
      staging: z.boolean().default(false).describe("use the CA's staging environment (untrusted test certificates)"),
      // Not z.url(): it silently drops newlines and tabs. certbot writes the URL into its renewal conf, where # starts a comment.
      acme_server: z
        .string()
        .regex(/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9\-._~:/?&=%+,@]*)?$/, 'an https URL such as https://acme.example/directory')
        .optional()
        .describe('ACME directory URL (any ACME CA)'),
      hsts: z.union([z.boolean(), z.number().int().min(0).max(1_000_000_000)], { error: 'true/false or max-age in seconds' }).default(false).describe('True or max-age in seconds'),
    }),
  ],
  { error: 'false, or a mapping {email, provider, staging, acme_server, hsts}' },
);

/** The keys of kraftwerk.yaml the tls plugin owns. */
export const TLS_SETTINGS = {
  tls: tls.default(false).describe('HTTPS certificates (false: plain HTTP only)'),
};

export const LETSENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETSENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

/** max-age sent for `hsts: true`: one year, what browsers' preload lists ask for at least. */
export const HSTS_DEFAULT_MAX_AGE = 31_536_000;

/** Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers. */
export const TLS_PROTOCOLS = ['TLSv1.2', 'TLSv1.3'] as const;
export const TLS_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305';

/** Where certbot keeps its state (Debian's default). */
export const LETSENCRYPT_DIR = '/etc/letsencrypt';
/** Runs after every successful `certbot renew`, whichever certificate was renewed. */
export const RENEWAL_HOOK = `${LETSENCRYPT_DIR}/renewal-hooks/deploy/kraftwerk-reload-nginx`;

export interface CertificatePaths {
  fullchain: string;
  privateKey: string;
}

/** Everything the plugin needs about the site's TLS, derived once from the config. */
export interface TlsSettings {
  provider: 'letsencrypt' | 'self-signed';
  /** certbot's lineage name (`--cert-name`) and the folder of self-signed files: the site's name. */
  certName: string;
  /** Names on the certificate: the canonical domain first, then other domains and aliases. */
  domains: string[];
  /** ACME directory URL (letsencrypt provider). */
  server: string;
  email?: string;
  hstsMaxAge: number;
  paths: CertificatePaths;
  /** HTTP-01 webroot (letsencrypt provider). */
  webroot?: string;
  /** certbot's renewal config of the lineage; it records the ACME server (letsencrypt provider). */
  renewalConf?: string;
}

export function certbotPaths(certName: string): CertificatePaths & { renewalConf: string; lineage: string } {
  const lineage = `${LETSENCRYPT_DIR}/live/${certName}`;
  return {
    lineage,
    fullchain: `${lineage}/fullchain.pem`,
    privateKey: `${lineage}/privkey.pem`,
    renewalConf: `${LETSENCRYPT_DIR}/renewal/${certName}.conf`,
  };
}

export function selfSignedDir(certName: string): string {
  return `/etc/kraftwerk/tls/${certName}`;
}

export function acmeWebroot(certName: string): string {
  return `/var/lib/kraftwerk/acme/${certName}`;
}

/**
 * The site's TLS settings, or undefined for `tls: false`. Problems the schema
 * cannot see (they involve two keys, or the domains) are ConfigErrors here,
 * before anything touches a server.
 */
export function tlsSettings(site: Site): TlsSettings | undefined {
  const { tls } = settingsOf(site, TLS_SETTINGS);
  if (tls === false) return undefined;
  const domains = [...new Set([...site.domains, ...site.aliases])];
  const hstsMaxAge = tls.hsts === true ? HSTS_DEFAULT_MAX_AGE : tls.hsts === false ? 0 : tls.hsts;
  if (tls.provider === 'self-signed') {
    const dir = selfSignedDir(site.name);
    return {
      provider: 'self-signed',
      certName: site.name,
      domains,
      server: '',
      hstsMaxAge,
      paths: { fullchain: `${dir}/fullchain.pem`, privateKey: `${dir}/privkey.pem` },
    };
  }
  if (tls.acme_server && tls.staging) {
    throw new ConfigError(site.configFile, 'tls.staging', 'staging: true cannot be combined with acme_server', {
      hint: "staging picks Let's Encrypt's staging server; with your own acme_server, give that CA's staging URL as acme_server instead.",
    });
  }
  const wildcards = domains.filter((d) => d.startsWith('*.'));
  if (wildcards.length) {
    throw new ConfigError(site.configFile, 'tls', `${wildcards.join(', ')}: wildcard names cannot be validated over HTTP-01`, {
      hint: 'List the names explicitly in domain/aliases, or use provider: self-signed.',
    });
  }
  const paths = certbotPaths(site.name);
  return {
    provider: 'letsencrypt',
    certName: site.name,
    domains,
    server: tls.acme_server ?? (tls.staging ? LETSENCRYPT_STAGING : LETSENCRYPT_PRODUCTION),
    email: tls.email,
    hstsMaxAge,
    paths: { fullchain: paths.fullchain, privateKey: paths.privateKey },
    webroot: acmeWebroot(site.name),
    renewalConf: paths.renewalConf,
  };
}
