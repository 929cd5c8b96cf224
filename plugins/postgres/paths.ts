/** Files of the postgres plugin on the node. */
import type { Site } from '../../core/index.ts';

/** The database in a dump folder (pg_dump's custom format); the folder is root's only. */
export function databaseArchive(dir: string): string {
  return `${dir}/postgres.dump`;
}

/** An external database's libpq service file (external.ts): in the site's state folder, root's alone; root 0600. */
export function serviceFilePath(site: Site): string {
  return `${site.paths.state}/postgres-service.conf`;
}
