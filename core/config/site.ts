import type { Config } from './schema.ts';
import { type SiteSettings, splitConfig, type ValidConfig } from './settings.ts';

/** Where sites register themselves on a node (domains) and keep what only root may change. */
export const SITES_DIR = '/etc/kraftwerk/sites';

/** Where a site lives on a server. One layout for every node (see DESIGN.md). */
export interface SitePaths {
  /** /srv/<site> */
  root: string;
  releases: string;
  /** Symlink to the live release. */
  current: string;
  venvs: string;
  shared: string;
  uploads: string;
  /** The live release's environment file (sh syntax, mode 0640): `current/.kraftwerk/env`. */
  env: string;
  /** Variables set with `kraftwerk env set`, merged over the generated ones. */
  envLocal: string;
  backups: string;
  /** Kraftwerk's own bookkeeping for the site: release records, lock. */
  state: string;
  logs: string;
}

/** A site as plugins see it: the validated config plus everything derived from it. */
export interface Site {
  /** Site name: system user, database, runit service and nginx file are named after it. */
  readonly name: string;
  /** The system user the site runs as. */
  readonly user: string;
  /** All domains; the first is canonical. */
  readonly domains: string[];
  readonly canonicalDomain: string;
  readonly aliases: string[];
  readonly wsgi: { module: string; callable: string };
  /** Enabled service plugins (from `services:`). */
  readonly services: string[];
  /** Core's keys of kraftwerk.yaml, validated. */
  readonly config: Config;
  /** The plugins' keys, validated: a plugin reads its own with `settingsOf(site, settings)`. */
  readonly settings: SiteSettings;
  /** Absolute path of the config file. */
  readonly configFile: string;
  /** Absolute path of the folder that is deployed (`src`). */
  readonly sourceDir: string;
  readonly paths: SitePaths;
  /** Runit service name of the web process (and prefix of worker processes). */
  readonly service: string;
  /** Set on a preview (`deploy --preview NAME`, core/config/preview.ts): the site it previews and NAME. */
  readonly preview?: { readonly of: string; readonly name: string };
}

export function sitePaths(name: string): SitePaths {
  const root = `/srv/${name}`;
  return {
    root,
    releases: `${root}/releases`,
    current: `${root}/current`,
    venvs: `${root}/venvs`,
    shared: `${root}/shared`,
    uploads: `${root}/shared/uploads`,
    env: releaseConfig(`${root}/current`).env,
    envLocal: `${root}/shared/env.local`,
    backups: `${root}/backups`,
    state: `${root}/.kraftwerk`,
    logs: `/var/log/kraftwerk/${name}`,
  };
}

/**
 * What says how a release runs lives in the release itself, in `.kraftwerk/`
 * (root's, closed to other sites; rsync never sends a project's own `.kraftwerk`):
 * its environment (as an envdir, and as a sh file for cron, workers and
 * `kraftwerk run`), and what plugins keep there (the app server's configuration
 * and socket). The web server connects through `current`, so the one atomic rename of `current` switches
 * code, configuration and traffic together, a deploy cut short anywhere
 * before it leaves the live release whole, and a rollback has no
 * configuration of its own to restore. (DESIGN.md had the ini in /etc and the
 * socket in /run; both moved here for that reason.)
 */
export interface ReleaseConfig {
  /** The release's `.kraftwerk/`: plugins keep their files of the release here. */
  dir: string;
  /** envdir: one file per variable (values taken literally). */
  environ: string;
  /** The same variables in sh syntax. */
  env: string;
}

export function releaseConfig(releasePath: string): ReleaseConfig {
  const dir = `${releasePath}/.kraftwerk`;
  return { dir, environ: `${dir}/environ`, env: `${dir}/env` };
}

/**
 * The group of the site and its web server: members are the site user and
 * www-data (nginx), never another site. It owns what both pass through or
 * nginx serves (the site's top folders, the release's `.kraftwerk/` for the
 * socket, static files, uploads); what is the site's alone (code, venvs,
 * environment, uWSGI ini) keeps the site's own group `site.user`, of which
 * www-data is not a member. `kwn-` + a site name (at most 28) fits the
 * 32-character limit of group names; no site user (`kw-…`) can have the name.
 */
export function siteWebGroup(site: Site): string {
  return `kwn-${site.name}`;
}

/** Builds the Site model from a validated config (core's keys and the plugins'). */
export function createSite(valid: ValidConfig, options: { configFile: string; sourceDir: string; name: string }): Site {
  const { config, settings } = splitConfig(valid);
  const domains = Array.isArray(config.domain) ? config.domain : [config.domain];
  const [module, callable] = (config.wsgi ?? `${options.name.replace(/-/g, '_')}.wsgi`).split(':') as [string, string?];
  return {
    name: options.name,
    // A site's own system user; the prefix keeps a site called "postgres" from becoming the postgres user.
    user: `kw-${options.name}`,
    domains,
    canonicalDomain: domains[0]!,
    aliases: config.aliases,
    wsgi: { module, callable: callable ?? 'application' },
    services: config.services,
    config,
    settings,
    configFile: options.configFile,
    sourceDir: options.sourceDir,
    paths: sitePaths(options.name),
    service: `kraftwerk-${options.name}`,
  };
}
