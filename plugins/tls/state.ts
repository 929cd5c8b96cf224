import { Stage } from '../../core/index.ts';

/**
 * How a site is served over HTTPS on one node. The `tls` plugin decides it
 * during `configure` (before the web server renders the site) and keeps it in
 * `ctx.state`; the web server plugin (nginx) renders it. Neither plugin imports
 * the other: this type is the whole contract between them.
 */
export interface SiteTls {
  /**
   * HTTP-01 webroot: every domain of the site serves this folder at
   * `http://<domain>/.well-known/acme-challenge/` on port 80 (also while no
   * certificate exists yet, so that the first one can be issued).
   */
  acmeWebroot?: string;
  /**
   * Certificate chain and private key for port 443. Undefined while none
   * exists (first deploy, or issuance failed): the site then stays on plain
   * HTTP exactly as without TLS, plus the challenge location.
   */
  certificate?: { fullchain: string; privateKey: string };
  /** Strict-Transport-Security max-age in seconds; 0 sends no header. */
  hstsMaxAge: number;
  /** nginx `ssl_protocols`. */
  protocols: readonly string[];
  /** nginx `ssl_ciphers` (TLS 1.2 suites; TLS 1.3 suites are fixed by OpenSSL). */
  ciphers: string;
  /**
   * Set by the tls plugin when the certificate files changed after the web
   * server's configuration was rendered (a certificate issued in `restart`):
   * the web server renders its site again at TLS_APPLY_STAGE and reloads.
   */
  reloadNeeded?: boolean;
}

const SITE_TLS_STATE = 'kraftwerk.siteTls';

/** The site's TLS on this node, or undefined when it is served over plain HTTP only. */
export function getSiteTls(ctx: { readonly state: Map<string, unknown> }): SiteTls | undefined {
  return ctx.state.get(SITE_TLS_STATE) as SiteTls | undefined;
}

export function setSiteTls(ctx: { readonly state: Map<string, unknown> }, tls: SiteTls): void {
  ctx.state.set(SITE_TLS_STATE, tls);
}

/** configure: the tls plugin publishes SiteTls here; the web server renders its site at a later stage. */
export const TLS_DECIDE_STAGE = Stage.EARLY;
/**
 * restart: the tls plugin obtains a certificate here, after the web server
 * reloaded (Stage.RELOAD) with the challenge location for every domain.
 */
export const TLS_ISSUE_STAGE = Stage.RELOAD + 10;
/** restart: the web server renders and reloads again when `reloadNeeded` is set. */
export const TLS_APPLY_STAGE = Stage.RELOAD + 20;
