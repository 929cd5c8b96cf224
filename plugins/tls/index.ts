/**
 * HTTPS for a site (`tls:` in kraftwerk.yaml). With `provider: letsencrypt`,
 * certbot obtains a certificate for every domain of the site from any ACME CA
 * with the HTTP-01 challenge through a webroot nginx serves; with
 * `provider: self-signed`, openssl makes one. The plugin only decides and
 * obtains: nginx renders what it publishes as SiteTls (core/site-tls.ts).
 *
 * The order on a deploy:
 *   configure  TLS_DECIDE_STAGE  probe the node's certificate; publish SiteTls (with the
 *                                certificate when one exists, else plain HTTP + challenge)
 *   restart    Stage.RELOAD      nginx reloads: the challenge location is live on port 80
 *              TLS_ISSUE_STAGE   certbot certonly, when the certificate is missing or its names changed
 *              TLS_APPLY_STAGE   nginx renders again with the new certificate and reloads
 *              VERIFY + 200      a failed issuance fails the deploy with the CA's error, after the
 *                                health check: the site keeps serving as before (over HTTP, or
 *                                with its previous certificate; core rolls back a release it replaced)
 *
 * Always applied: with `tls: false` it removes what an earlier TLS setup left,
 * so turning TLS off returns the site to plain HTTP cleanly.
 */
import {
  aptInstallCommand,
  type DeployContext,
  definePlugin,
  settingsOf,
  type Hooks,
  KraftwerkError,
  lifecycleHooks,
  type NodeContext,
  type Site,
  Stage,
} from '../../core/index.ts';
import { getSiteTls, setSiteTls, type SiteTls, TLS_DECIDE_STAGE, TLS_ISSUE_STAGE } from './state.ts';
import {
  type CertificateState,
  certonlyCommand,
  issueReason,
  parseCertificateProbe,
  probeCertificateCommand,
  removeTlsCommand,
  renewalHookFile,
  selfSignedCommand,
  summarizeCertbotError,
  type TlsLeftovers,
} from './commands.ts';
import { tlsDoctorChecks } from './doctor.ts';
import { certbotPaths, selfSignedDir, TLS_CIPHERS, TLS_PROTOCOLS, TLS_SETTINGS, type TlsSettings, tlsSettings } from './settings.ts';

const NAME = 'tls';
const PLAN_STATE = 'tls.plan';
/** certbot waits for the CA to validate every name; a slow CA answers within minutes. */
const CERTBOT_TIMEOUT_MS = 10 * 60_000;

/** What the configure task found, for the restart tasks of the same node. */
interface IssuePlan {
  /** Why certbot must run; undefined when the certificate on the node fits. */
  reason?: string;
  before: CertificateState;
  /** Set when certbot failed: the CA's problems, for the final error. */
  failure?: string;
}

const planOf = (ctx: NodeContext) => ctx.state.get(PLAN_STATE) as IssuePlan | undefined;

function publish(ctx: NodeContext, settings: TlsSettings, hasCertificate: boolean, reloadNeeded = false): SiteTls {
  const tls: SiteTls = {
    acmeWebroot: settings.webroot,
    certificate: hasCertificate ? { ...settings.paths } : undefined,
    hstsMaxAge: settings.hstsMaxAge,
    protocols: TLS_PROTOCOLS,
    ciphers: TLS_CIPHERS,
    reloadNeeded,
  };
  setSiteTls(ctx, tls);
  return tls;
}

function describeExpiry(state: CertificateState, now = new Date()): string {
  if (!state.notAfter) return 'expiry unknown';
  const days = Math.floor((state.notAfter.getTime() - now.getTime()) / 86_400_000);
  return `valid until ${state.notAfter.toISOString().slice(0, 10)} (${days} days)`;
}

function applyTls(hooks: Hooks, site: Site): void {
  const settings = tlsSettings(site);

  hooks.setupNode.tap(NAME, (_ctx, tasks, packages) => {
    if (!settings) return;
    packages.add('openssl');
    if (settings.provider !== 'letsencrypt') return;
    // Debian's certbot brings its own renewal: certbot.timer under systemd, /etc/cron.d/certbot elsewhere.
    packages.add('certbot');
    tasks.add({
      title: 'certbot renewal hook (reload nginx)',
      stage: Stage.LATE,
      run: async (ctx, task) => {
        const changed = await ctx.remote.syncFiles([renewalHookFile()]);
        if (changed.length) ctx.changes.push(`wrote ${changed.join(', ')}`);
        else task.title('certbot renewal hook (unchanged)');
      },
    });
  });

  hooks.configure.tap(NAME, (_ctx, tasks) => {
    if (!settings) return;
    tasks.add({
      title: 'certificate',
      stage: TLS_DECIDE_STAGE,
      run: async (ctx, task) => {
        const { stdout } = await ctx.remote.exec(probeCertificateCommand(settings));
        const before = parseCertificateProbe(stdout);
        const reason = issueReason(settings, before);

        if (settings.provider === 'self-signed') {
          if (reason) {
            task.title(`self-signed certificate: generating (${reason})`);
            await ctx.remote.exec(selfSignedCommand(settings));
          }
          // A regenerated certificate behind an unchanged nginx file still needs a reload.
          publish(ctx, settings, true, Boolean(reason) && before.exists);
          task.title(reason ? `self-signed certificate for ${settings.domains.join(', ')} (${reason})` : `self-signed certificate ${describeExpiry(before)}`);
          return;
        }

        if (!before.certbot) {
          task.title('certificate: installing certbot');
          await ctx.remote.exec(aptInstallCommand(['certbot', 'openssl']), {
            onStdout: (chunk) => {
              const line = chunk.trim().split('\n').pop();
              if (line) task.output(line);
            },
          });
        }
        ctx.files.add(renewalHookFile());
        ctx.state.set(PLAN_STATE, { reason, before } satisfies IssuePlan);
        // Until certbot succeeds, nginx keeps whatever certificate the node has (or plain HTTP).
        publish(ctx, settings, before.exists);
        task.title(
          reason
            ? `certificate: ${reason}, will be requested from ${settings.server} after nginx reloads`
            : `certificate for ${before.domains.join(', ')} ${describeExpiry(before)}`,
        );
      },
    });
  });

  hooks.restart.tap(NAME, (_ctx, tasks) => {
    // What an earlier setup left that this one does not use: everything when TLS is off, the other provider's files otherwise.
    const leftovers: TlsLeftovers = {
      letsencrypt: settings?.provider !== 'letsencrypt',
      selfSigned: settings?.provider !== 'self-signed',
    };
    tasks.add({
      title: settings ? 'remove certificates of the other provider' : 'remove certificates of an earlier TLS setup',
      // After the health check and the release record: a deploy that fails before is rolled back to a
      // release whose nginx site may still use the certificate.
      stage: Stage.VERIFY + 150,
      skip: (ctx) => !nginxDropped(ctx, site, leftovers),
      run: async (ctx, task) => {
        const { stdout } = await ctx.remote.exec(removeTlsCommand(site.name, leftovers));
        const removed = stdout.split('\n').filter(Boolean);
        const what = settings ? `TLS from ${settings.provider}` : 'TLS off';
        task.title(removed.length ? `${what}: ${removed.join('; ')}` : `${what} (nothing to remove)`);
      },
    });
    if (!settings) return;
    if (settings.provider !== 'letsencrypt') return;

    tasks.add({
      title: 'obtain certificate',
      stage: TLS_ISSUE_STAGE,
      skip: (ctx) => (planOf(ctx)?.reason ? false : 'certificate is current'),
      run: async (ctx, task) => {
        const plan = planOf(ctx)!;
        const added = plan.before.exists && settings.domains.some((d) => !plan.before.domains.includes(d));
        const serverChanged = plan.before.exists && plan.before.server !== undefined && plan.before.server !== settings.server;
        const cmd = certonlyCommand(settings, { expand: added, force: serverChanged });
        task.title(`obtain certificate for ${settings.domains.join(', ')} (${plan.reason})`);
        if (ctx.remote.dryRun) {
          await ctx.remote.exec(cmd);
          return;
        }
        const res = await ctx.remote.exec(cmd, {
          check: false,
          timeoutMs: CERTBOT_TIMEOUT_MS,
          onStdout: (c) => task.output(c),
          onStderr: (c) => task.output(c),
        });
        if (res.code !== 0) {
          plan.failure = summarizeCertbotError(`${res.stdout}\n${res.stderr}`);
          task.output(plan.failure);
          task.title(`obtain certificate: FAILED (${plan.before.exists ? 'keeping the previous certificate' : 'the site stays on plain HTTP'})`);
          return;
        }
        const tls = getSiteTls(ctx)!;
        tls.certificate = { ...settings.paths };
        tls.reloadNeeded = true;
        task.title(`obtained certificate for ${settings.domains.join(', ')} from ${settings.server}`);
      },
    });

    tasks.add({
      title: 'certificate error',
      // After the health check proved the site works over HTTP. Failing here rolls the node back to its
      // previous release and configuration when it has one: either way it serves as it did before the deploy.
      stage: Stage.VERIFY + 200,
      skip: (ctx) => !planOf(ctx)?.failure,
      run: (ctx) => {
        const plan = planOf(ctx)!;
        throw new KraftwerkError(
          `could not obtain a certificate for ${settings.domains.join(', ')} from ${settings.server}:\n${plan.failure}\n` +
            (plan.before.exists
              ? 'The site keeps serving its previous certificate.'
              : `The site keeps serving over plain HTTP (http://${site.canonicalDomain}/).`),
          {
            hint:
              `Check that the DNS of every domain points at ${ctx.node} and that port 80 is reachable from the CA, then deploy again. ` +
              `certbot's log on the node: /var/log/letsencrypt/letsencrypt.log`,
          },
        );
      },
    });
  });

  hooks.status.tapPromise(NAME, async (ctx, report) => {
    if (!settings) return;
    const { stdout } = await ctx.remote.exec(probeCertificateCommand(settings, { renewal: true }));
    const state = parseCertificateProbe(stdout);
    report.add('provider', settings.provider);
    if (!state.exists) {
      report.add('certificate', 'none: the site is served over plain HTTP');
      return;
    }
    report.add('domains', state.domains);
    if (state.notAfter) {
      report.add('expires', state.notAfter.toISOString().replace('.000Z', 'Z'));
      report.add('days left', Math.floor((state.notAfter.getTime() - Date.now()) / 86_400_000));
    }
    if (state.issuer) report.add('issuer', state.issuer);
    if (settings.provider === 'letsencrypt' && state.renewal) report.add('renewal', describeRenewal(state.renewal));
  });

  // With a certificate, plain HTTP only redirects: core's health check asks over HTTPS, on the node, for the real answer.
  lifecycleHooks(hooks).healthcheck.tap(NAME, (ctx, request) => {
    if (getSiteTls(ctx)?.certificate) request.https = true;
  });

  hooks.destroy.tap(NAME, (_ctx, tasks) => {
    tasks.add({
      title: 'remove certificates',
      run: async (ctx, task) => {
        const { stdout } = await ctx.remote.exec(removeTlsCommand(site.name));
        const removed = stdout.split('\n').filter(Boolean);
        task.title(removed.length ? `remove certificates (${removed.join('; ')})` : 'remove certificates (none)');
      },
    });
  });
}

/**
 * Turning TLS off or changing the provider always rewrites the nginx site, so
 * an unchanged one means there is nothing to remove (no command on a
 * no-change deploy). A site file that still names the files (a rollback
 * restoring a release that used them) keeps them.
 */
function nginxDropped(ctx: DeployContext, site: Site, leftovers: TlsLeftovers): boolean {
  if (!ctx.files.changedUnder('/etc/nginx/')) return false;
  const paths = [
    ...(leftovers.letsencrypt ? [`${certbotPaths(site.name).lineage}/`] : []),
    ...(leftovers.selfSigned ? [`${selfSignedDir(site.name)}/`] : []),
  ];
  return !ctx.files.all.some((f) => f.path.startsWith('/etc/nginx/') && paths.some((p) => f.content.includes(p)));
}

function describeRenewal(r: NonNullable<CertificateState['renewal']>): string {
  if (r.systemdTimer) return `certbot.timer (${r.systemdTimer})`;
  if (!r.cronFile) return 'none: /etc/cron.d/certbot is missing';
  return r.cronRunning ? 'cron (/etc/cron.d/certbot)' : 'cron (/etc/cron.d/certbot), but cron is not running';
}

export default definePlugin({
  name: NAME,
  runsOn: ['web'],
  init: { examples: ({ domain }) => ({ tls: { email: `admin@${domain}`, provider: 'letsencrypt', staging: false, hsts: false } }) },
  description: "HTTPS: certificates from Let's Encrypt or any ACME CA (or self-signed), renewal, HTTP → HTTPS",
  settings: TLS_SETTINGS,
  siteUrl: (site) => (settingsOf(site, TLS_SETTINGS).tls ? `https://${site.canonicalDomain}/` : undefined),
  doctorChecks: tlsDoctorChecks,
  apply: applyTls,
});
