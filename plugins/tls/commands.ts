/**
 * Pure builders of every shell command the tls plugin runs, and parsers of
 * their output. Nothing here touches a server.
 */
import path from 'node:path';
import { type Script, raw, sh } from '../../core/index.ts';
import { LETSENCRYPT_DIR, RENEWAL_HOOK, acmeWebroot, certbotPaths, selfSignedDir, type TlsSettings } from './settings.ts';

/** What a probe found about the site's certificate on a node. */
export interface CertificateState {
  /** certbot is installed (letsencrypt provider). */
  certbot: boolean;
  /** The certificate file exists and openssl could read it. */
  exists: boolean;
  /** DNS names on the certificate, in its order. */
  domains: string[];
  notAfter?: Date;
  serial?: string;
  issuer?: string;
  /** ACME server recorded in certbot's renewal config. */
  server?: string;
  /** How renewal runs (status only). */
  renewal?: { systemdTimer?: 'active' | 'inactive'; cronFile: boolean; cronRunning: boolean };
}

/**
 * One read-only command that tells everything about the certificate:
 * whether certbot is there, the certificate's names, expiry, serial and issuer,
 * and the ACME server certbot would renew it with.
 */
export function probeCertificateCommand(settings: TlsSettings, options: { renewal?: boolean } = {}): Script {
  const renewal = options.renewal
    ? sh`
if [ -d /run/systemd/system ]; then echo "timer=$(systemctl is-active certbot.timer 2>/dev/null)"; fi
[ -f /etc/cron.d/certbot ] && echo cronfile=1
pgrep -x cron >/dev/null 2>&1 && echo cronrunning=1`
    : raw('');
  const server = settings.renewalConf
    ? sh`
[ -f ${settings.renewalConf} ] && sed -n 's/^server *= *//p' ${settings.renewalConf} | sed 's/^/server=/'`
    : raw('');
  return sh`command -v certbot >/dev/null 2>&1 && echo certbot=1
if [ -f ${settings.paths.fullchain} ] && openssl x509 -in ${settings.paths.fullchain} -noout -enddate -serial -issuer -ext subjectAltName 2>/dev/null; then echo cert=1; fi${server}${renewal}
true`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** openssl's `notAfter=Feb 23 17:21:50 2027 GMT`. */
export function parseOpensslDate(text: string): Date | undefined {
  const m = /^([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\d{4})\s+GMT$/.exec(text.trim());
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[1]!);
  if (month < 0) return undefined;
  return new Date(Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])));
}

export function parseCertificateProbe(stdout: string): CertificateState {
  const state: CertificateState = { certbot: false, exists: false, domains: [] };
  const lines = stdout.split('\n');
  let renewal: NonNullable<CertificateState['renewal']> | undefined;
  const renewalInfo = () => (renewal ??= { cronFile: false, cronRunning: false });
  for (const [i, line] of lines.entries()) {
    const eq = line.indexOf('=');
    const key = eq < 0 ? line.trim() : line.slice(0, eq);
    const value = eq < 0 ? '' : line.slice(eq + 1).trim();
    if (key === 'certbot') state.certbot = value === '1';
    else if (key === 'cert') state.exists = value === '1';
    else if (key === 'notAfter') state.notAfter = parseOpensslDate(value);
    else if (key === 'serial') state.serial = value.toUpperCase();
    else if (key === 'issuer') state.issuer = value;
    else if (key === 'server') state.server = value;
    else if (key === 'timer') renewalInfo().systemdTimer = value === 'active' ? 'active' : 'inactive';
    else if (key === 'cronfile') renewalInfo().cronFile = true;
    else if (key === 'cronrunning') renewalInfo().cronRunning = true;
    else if (line.startsWith('X509v3 Subject Alternative Name')) {
      state.domains = (lines[i + 1] ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.startsWith('DNS:'))
        .map((s) => s.slice(4));
    }
  }
  if (renewal) state.renewal = renewal;
  return state;
}

/** Why the certificate must be (re)issued on this deploy, or undefined when the one on the node fits. */
export function issueReason(settings: TlsSettings, state: CertificateState, now = new Date()): string | undefined {
  if (!state.exists) return 'no certificate yet';
  const missing = settings.domains.filter((d) => !state.domains.includes(d));
  if (missing.length) return `new domain${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
  const extra = state.domains.filter((d) => !settings.domains.includes(d));
  if (extra.length) return `domain${extra.length > 1 ? 's' : ''} ${extra.join(', ')} removed`;
  if (settings.provider === 'letsencrypt' && state.server !== undefined && state.server !== settings.server) {
    return `ACME server changed from ${state.server}`;
  }
  if (!state.notAfter) return 'certificate expiry unreadable';
  const days = (state.notAfter.getTime() - now.getTime()) / 86_400_000;
  if (days < 30) return days <= 0 ? 'certificate expired' : `certificate expires in ${Math.floor(days)} days`;
  return undefined;
}

/**
 * `certbot certonly` with the HTTP-01 challenge through the site's webroot,
 * never interactive. `--cert-name` pins the lineage to the site so that its
 * paths never change; the names to cover are always given in full.
 */
export function certonlyCommand(settings: TlsSettings, options: { expand?: boolean; force?: boolean } = {}): Script {
  const webroot = settings.webroot ?? acmeWebroot(settings.certName);
  const account = settings.email ? sh`--email ${settings.email}` : raw('--register-unsafely-without-email');
  // A lineage from another ACME server (staging → production) is replaced, not kept until it expires.
  const force = options.force ? raw(' --force-renewal --break-my-certs') : raw('');
  const expand = options.expand ? raw(' --expand') : raw('');
  const names = settings.domains.flatMap((d) => ['-d', d]);
  return sh`install -d -m 0755 ${webroot} && certbot certonly --non-interactive --agree-tos --webroot --webroot-path ${webroot} --cert-name ${settings.certName} --server ${settings.server} ${account}${expand}${force} ${names}`;
}

/** A self-signed certificate for every name, written only when the key and certificate are both made. */
export function selfSignedCommand(settings: TlsSettings, days = 365): Script {
  const { fullchain, privateKey } = settings.paths;
  const san = settings.domains.map((d) => `DNS:${d}`).join(',');
  const cn = settings.domains[0]!;
  // The key is made unreadable before anything is written to it; both files are renamed into place together.
  return sh`install -d -m 0700 ${path.posix.dirname(fullchain)} ${path.posix.dirname(privateKey)} && (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days ${days} -subj ${`/CN=${cn}`} -addext ${`subjectAltName=${san}`} -keyout ${`${privateKey}.new`} -out ${`${fullchain}.new`} 2>&1) && chmod 0644 ${`${fullchain}.new`} && mv -f ${`${privateKey}.new`} ${privateKey} && mv -f ${`${fullchain}.new`} ${fullchain}`;
}

/** Which of the providers' files to remove. */
export interface TlsLeftovers {
  /** certbot's lineage of the site and its webroot. */
  letsencrypt: boolean;
  /** The self-signed certificate and key. */
  selfSigned: boolean;
}

/**
 * Remove what the site's TLS left on the node (by default everything: certbot
 * lineage, self-signed files, webroot), so the node no longer renews a
 * certificate nobody serves. Prints what it removed.
 */
export function removeTlsCommand(certName: string, which: TlsLeftovers = { letsencrypt: true, selfSigned: true }): Script {
  const le = certbotPaths(certName);
  const parts: Script[] = [];
  if (which.letsencrypt) {
    parts.push(sh`if [ -f ${le.renewalConf} ] || [ -d ${le.lineage} ]; then
  if command -v certbot >/dev/null 2>&1 && [ -f ${le.renewalConf} ]; then certbot delete --non-interactive --cert-name ${certName} >/dev/null 2>&1 || true; fi
  rm -rf ${le.lineage} ${`${LETSENCRYPT_DIR}/archive/${certName}`} ${le.renewalConf}
  echo "removed certificate ${certName}"
fi`);
  }
  const dirs = [...(which.selfSigned ? [selfSignedDir(certName)] : []), ...(which.letsencrypt ? [acmeWebroot(certName)] : [])];
  if (dirs.length) parts.push(sh`for d in ${dirs}; do if [ -d "$d" ]; then rm -rf "$d"; echo "removed $d"; fi; done`);
  parts.push(raw('true'));
  return { text: parts.map((c) => c.text).join('\n'), display: parts.map((c) => c.display).join('\n') };
}

/**
 * The renewal deploy hook: certbot runs it after it renewed any certificate
 * (from its systemd timer or /etc/cron.d/certbot), so nginx serves the new one.
 * A configuration nginx rejects is never reloaded.
 */
export function renewalHookFile(): { path: string; content: string; mode: number } {
  return {
    path: RENEWAL_HOOK,
    content: `#!/bin/sh
# Kraftwerk: reload nginx after certbot renewed a certificate.
set -e
nginx -t -q
service nginx reload
`,
    mode: 0o755,
  };
}

/**
 * The ACME problems certbot reported, for a deploy error: the Domain/Type/Detail
 * blocks when there are some, else the last meaningful lines.
 */
export function summarizeCertbotError(output: string): string {
  const lines = output.split('\n').map((l) => l.trimEnd());
  const problems: string[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^\s*Domain:\s*(\S+)/.exec(line);
    if (!m) continue;
    const type = /^\s*Type:\s*(.+)$/.exec(lines[i + 1] ?? '')?.[1];
    const detail = /^\s*Detail:\s*(.+)$/.exec(lines[i + 2] ?? '')?.[1];
    problems.push(`${m[1]}: ${[type, detail].filter(Boolean).join(': ')}`);
  }
  if (problems.length) return problems.join('\n');
  const meaningful = lines.filter(
    (l) => l.trim() && !/^(Saving debug log|Ask for help|See the logfile|Requesting a certificate|Some challenges have failed|- - -)/.test(l.trim()),
  );
  return meaningful.slice(-6).join('\n') || 'certbot failed without a message';
}
