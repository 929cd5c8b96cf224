import { releaseConfig, type Site } from '../config/site.ts';
import { asUser, type Script, raw, sh } from './sh.ts';

/**
 * Run `command` the way the site itself runs: as the site's user, in `dir`
 * (a release, usually `current`), with the site's environment exported and
 * its virtualenv first on PATH. Used by release commands, cron jobs, worker
 * processes and `kraftwerk run`.
 */
export function inSiteEnv(site: Site, options: { dir: string; venv: string; command: string | Script }): Script {
  return asUser(site.user, siteEnvScript(site, options));
}

/**
 * The script `inSiteEnv` runs, for a caller that is the site's user already
 * (cron lines and worker services switch user before anything else runs).
 */
export function siteEnvScript(site: Site, options: { dir: string; venv: string; command: string | Script }): Script {
  const user = typeof options.command === 'string' ? raw(options.command) : options.command;
  // The environment of the release it runs in (a release command runs before its release is live),
  // read relative to the folder it went into: `current` may switch between the two.
  return sh`cd ${options.dir} && set -a && . ${releaseConfig('.').env} && set +a && export PATH=${options.venv}/bin:"$PATH" VIRTUAL_ENV=${options.venv} HOME=${site.paths.root} && ${user}`;
}

/** The venv of the live release: `current/.venv` is a symlink written at deploy time. */
export function currentVenv(site: Site): string {
  return `${site.paths.current}/.venv`;
}

