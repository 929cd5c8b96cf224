import type { Config } from './config/schema.ts';

/** Where sites register themselves on a node (domains) and keep what only root may change (uWSGI config). */
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
  /** The site's environment file (mode 0640). */
  env: string;
  /** Variables set with `kraftwerk env set`, merged over the generated ones. */
  envLocal: string;
  backups: string;
  /** Kraftwerk's own bookkeeping for the site: release records, lock. */
  state: string;
  /** uWSGI socket nginx talks to. */
  socket: string;
  /** The site's uWSGI ini (not in /srv: only root may change how the site runs); runit starts uWSGI with it. */
  uwsgiIni: string;
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
  readonly config: Config;
  /** Absolute path of the config file. */
  readonly configFile: string;
  /** Absolute path of the folder that is deployed (`src`). */
  readonly sourceDir: string;
  readonly paths: SitePaths;
  /** Runit service name of the web process (and prefix of worker processes). */
  readonly service: string;
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
    env: `${root}/shared/env`,
    envLocal: `${root}/shared/env.local`,
    backups: `${root}/backups`,
    state: `${root}/.kraftwerk`,
    socket: `/run/kraftwerk/${name}.sock`,
    uwsgiIni: `${SITES_DIR}/${name}/uwsgi.ini`,
    logs: `/var/log/kraftwerk/${name}`,
  };
}

/** Builds the Site model from a validated config. */
export function createSite(config: Config, options: { configFile: string; sourceDir: string; name: string }): Site {
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
    configFile: options.configFile,
    sourceDir: options.sourceDir,
    paths: sitePaths(options.name),
    service: `kraftwerk-${options.name}`,
  };
}
