import { settingsOf, type Site } from '../../core/index.ts';
import { FILES_SETTINGS } from './settings.ts';

/** The mount the uploads are on when they are shared between nodes (`files.shared_path`). */
export function sharedUploadsMount(site: Site): string | undefined {
  return settingsOf(site, FILES_SETTINGS).files?.shared_path;
}

/** The site's uploads folder on a node: on the shared mount when there is one, else the node's own. */
export function uploadsDir(site: Site): string {
  const mount = sharedUploadsMount(site);
  return mount ? `${mount}/${site.name}` : site.paths.uploads;
}

/**
 * Below which folder nginx checks symlinks in the uploads: the folder that holds them, whose
 * owner the site is not (root's shared/, or the user's mount), so the site can swap nothing above it.
 */
export function uploadsSymlinksFrom(site: Site): string {
  return sharedUploadsMount(site) ?? site.paths.shared;
}
