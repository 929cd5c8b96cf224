/**
 * What the tls plugin adds to `kraftwerk doctor`: the site's certificate on the node,
 * judged by how soon it expires and whether renewal runs. Read-only (the probe `status`
 * uses too).
 */
import type { DoctorChecks, DoctorFinding, Site } from '../../core/index.ts';
import { type CertificateState, parseCertificateProbe, probeCertificateCommand } from './commands.ts';
import { type TlsSettings, tlsSettings } from './settings.ts';

/**
 * certbot renews 30 days before expiry, and a deploy makes a new self-signed certificate
 * then (issueReason): a certificate with fewer days left missed its renewal. Below a week
 * browsers are about to refuse the site.
 */
export const CERT_WARN_DAYS = 30;
export const CERT_FAIL_DAYS = 7;

/** The certificate as doctor reports it (`now` for tests). */
export function certificateFinding(settings: TlsSettings, state: CertificateState, node: string, now = new Date()): DoctorFinding {
  const redeploy = `kraftwerk deploy ${node}`;
  if (!state.exists) {
    return {
      level: 'error',
      detail: `no certificate for ${settings.domains.join(', ')}: the site is served over plain HTTP`,
      hint:
        settings.provider === 'letsencrypt'
          ? `Point the DNS of every domain at ${node}, open port 80, then: ${redeploy}`
          : `Deploy again to make one: ${redeploy}`,
    };
  }
  const missing = settings.domains.filter((d) => !state.domains.includes(d));
  if (missing.length) {
    return { level: 'error', detail: `the certificate does not cover ${missing.join(', ')}`, hint: `Deploy again to get one that does: ${redeploy}` };
  }
  if (!state.notAfter) return { level: 'warning', detail: 'the certificate expiry is unreadable', hint: `Deploy again to replace it: ${redeploy}` };
  const days = Math.floor((state.notAfter.getTime() - now.getTime()) / 86_400_000);
  const until = `${state.notAfter.toISOString().slice(0, 10)} (${days} days)`;
  const renewalHint =
    settings.provider === 'letsencrypt'
      ? `certbot did not renew it: see /var/log/letsencrypt/letsencrypt.log on the node, then: certbot renew (or ${redeploy})`
      : `Deploy again to make a new one: ${redeploy}`;
  if (days < 0) return { level: 'error', detail: `the certificate expired on ${state.notAfter.toISOString().slice(0, 10)}`, hint: renewalHint };
  if (days < CERT_FAIL_DAYS) return { level: 'error', detail: `the certificate expires ${until}`, hint: renewalHint };
  if (days < CERT_WARN_DAYS) return { level: 'warning', detail: `the certificate expires ${until}`, hint: renewalHint };
  return { level: 'ok', detail: `${settings.provider} certificate for ${state.domains.join(', ')} valid until ${until}` };
}

export function tlsDoctorChecks(checks: DoctorChecks, site: Site): void {
  const settings = tlsSettings(site);
  if (!settings) return;
  checks.node({
    name: 'certificate',
    async run(ctx) {
      const { stdout } = await ctx.remote.exec(probeCertificateCommand(settings));
      return certificateFinding(settings, parseCertificateProbe(stdout), ctx.node);
    },
  });
}
