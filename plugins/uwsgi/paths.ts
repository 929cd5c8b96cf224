/**
 * Where uWSGI's files of a release are: in the release's own `.kraftwerk/`
 * (core's `releaseConfig`), so that the one rename of `current` switches code,
 * configuration and traffic together. The ini is root's, readable by the
 * site's group (a graceful reload re-reads it as the site user); the socket is
 * made by the site's uWSGI, open to the site's web group (the site and nginx).
 */
import { releaseConfig, type Site } from '../../core/index.ts';

/** The uWSGI ini of the release at `releasePath`. */
export function releaseUwsgiIni(releasePath: string): string {
  return `${releaseConfig(releasePath).dir}/uwsgi.ini`;
}

/** The unix socket the release's uWSGI listens on. */
export function releaseSocket(releasePath: string): string {
  return `${releaseConfig(releasePath).dir}/uwsgi.sock`;
}

/** The socket the web server talks to: the live release's own, through `current`. */
export function liveSocket(site: Site): string {
  return releaseSocket(site.paths.current);
}
