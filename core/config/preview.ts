/**
 * Previews (`deploy --preview NAME`): the project deployed a second time on the
 * same node, as a site of its own. The preview of site `shop` named `feat1` is
 * the site `shop-feat1` at `feat1.<canonical domain>` (or `feat1.<preview_domain>`).
 * It is just another site to every plugin: its own system user, folders,
 * database, Redis user, services and nginx site, all named after its site
 * name, so every guarantee between sites holds between a site and its
 * previews. What is the main site's alone is not copied: its aliases (and so
 * their redirects) and its certificate; the preview gets its own under the
 * same `tls:` settings.
 */
import { UsageError } from '../errors.ts';
import { reservedSiteName, SITE_NAME_PATTERN, type SiteNameReservation } from './schema.ts';
import { createSite, type Site } from './site.ts';
import type { ValidConfig } from './settings.ts';

/** A preview's NAME: one DNS label in lower case (it becomes part of a host name and of the site name). */
export const PREVIEW_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The site name of a preview: `<site>-<NAME>`. */
export function previewSiteName(siteName: string, name: string): string {
  return `${siteName}-${name}`;
}

/** What a preview is called and where it answers. */
export interface PreviewNames {
  /** NAME as given to --preview. */
  name: string;
  /** `<site>-<NAME>`. */
  siteName: string;
  /** `<NAME>.<preview_domain or canonical domain>`. */
  domain: string;
}

const bad = (name: string, problem: string, hint: string) =>
  new UsageError(`--preview ${JSON.stringify(name)}: ${problem}`, { hint: `${hint} Nothing was changed.` });

/**
 * Check NAME and derive the preview's site name and domain. Every problem is a
 * usage error naming --preview (exit 2), before anything touches a node.
 */
export function previewNames(site: Site, name: string, reservations: readonly SiteNameReservation[] = []): PreviewNames {
  if (!PREVIEW_NAME_PATTERN.test(name)) {
    throw bad(
      name,
      'a preview name is one DNS label: lower-case letters, digits and -, not starting or ending with -, at most 63 characters',
      'Use e.g. the branch name in lower case with / and _ replaced by -: --preview feat-login.',
    );
  }
  const siteName = previewSiteName(site.name, name);
  const room = 28 - site.name.length - 1;
  if (!SITE_NAME_PATTERN.test(siteName)) {
    throw bad(
      name,
      `the preview's site name ${siteName} is longer than 28 characters (it names the site's user, database and services)`,
      room > 0 ? `Use a name of at most ${room} characters.` : `The site name ${site.name} leaves no room for a preview name: set a shorter \`package:\`.`,
    );
  }
  const reserved = reservedSiteName(siteName, reservations);
  if (reserved) throw bad(name, `the preview's site name ${reserved}`, 'Choose another preview name.');
  const base = site.config.preview_domain ?? site.canonicalDomain;
  if (base.startsWith('*.')) {
    throw bad(name, `the canonical domain ${base} is a wildcard: a preview cannot be named under it`, 'Set `preview_domain:` in kraftwerk.yaml (e.g. previews.example.com).');
  }
  const domain = `${name}.${base}`;
  if (domain.length > 253) throw bad(name, `the preview's domain ${domain} is longer than 253 characters`, 'Use a shorter preview name or preview_domain.');
  if ([...site.domains, ...site.aliases].includes(domain)) {
    throw bad(name, `${domain} is a domain of the site ${site.name} itself`, 'Choose another preview name.');
  }
  return { name, siteName, domain };
}

/**
 * The preview's Site: the project's, renamed, at its one domain, without the
 * main site's aliases. The WSGI module stays the project's (its default is
 * derived from the site name).
 */
export function previewSite(site: Site, names: PreviewNames): Site {
  const valid = {
    ...site.config,
    ...site.settings,
    domain: names.domain,
    aliases: [],
    package: names.siteName,
    wsgi: `${site.wsgi.module}:${site.wsgi.callable}`,
  } as ValidConfig;
  return { ...createSite(valid, { configFile: site.configFile, sourceDir: site.sourceDir, name: names.siteName }), preview: { of: site.name, name: names.name } };
}
