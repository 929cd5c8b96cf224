/**
 * A database the site does not get from the node (`postgres: {url: env}`):
 * DATABASE_URL is the user's, and dump, load and backups reach the database
 * through it. The URL holds the password, so no command ever carries it (a
 * command line is readable by every user of the node): each deploy writes it
 * as a libpq service file that only root reads, and pg_dump and pg_restore,
 * run by root, name the service.
 */
import { KraftwerkError, sh, type RemoteFile, type Script, type Site } from '../../core/index.ts';
import { databaseArchive, serviceFilePath } from './paths.ts';

/** The service's name inside the file. */
const SERVICE = 'kraftwerk';

/** libpq connection keywords a URL's query may carry (sslmode, sslrootcert, connect_timeout, …). */
const KEYWORD = /^[a-z_]+$/;

/**
 * The service file for `url` (DATABASE_URL): host, port, dbname, user,
 * password, and the URL's query parameters. A value that would end its line
 * (or lose its edges to libpq's trimming) is refused, naming the part but
 * never the value.
 */
export function serviceFileContent(url: string, where: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badUrl(where, 'it is not a URL');
  }
  if (parsed.protocol !== 'postgresql:' && parsed.protocol !== 'postgres:') throw badUrl(where, `it starts with ${parsed.protocol}// rather than postgresql://`);
  const fields: [string, string][] = [];
  const add = (key: string, value: string) => {
    if (value === '') return;
    if (/[\r\n\0]/.test(value) || value.trim() !== value) throw badUrl(where, `its ${key} holds a line break or begins or ends with a space`);
    fields.push([key, value]);
  };
  add('host', decodeURIComponent(parsed.hostname).replace(/^\[(.*)\]$/, '$1'));
  add('port', parsed.port);
  add('dbname', decodeURIComponent(parsed.pathname.replace(/^\//, '')));
  add('user', decodeURIComponent(parsed.username));
  add('password', decodeURIComponent(parsed.password));
  for (const [key, value] of parsed.searchParams) {
    if (!KEYWORD.test(key)) throw badUrl(where, `its query has a parameter ${JSON.stringify(key)} that is not a libpq keyword`);
    add(key, value);
  }
  if (!fields.some(([k]) => k === 'dbname')) throw badUrl(where, 'it names no database (postgresql://user:password@host:5432/database)');
  return `[${SERVICE}]\n${fields.map(([k, v]) => `${k}=${v}`).join('\n')}\n`;
}

function badUrl(where: string, why: string): KraftwerkError {
  return new KraftwerkError(`DATABASE_URL of ${where} cannot be used: ${why}`, {
    hint: 'Set it to the URL your provider gives (postgresql://user:password@host:5432/database?sslmode=verify-full): kraftwerk env set <node> DATABASE_URL reads it from stdin.',
  });
}

export function serviceFile(site: Site, url: string, node: string): RemoteFile {
  return { path: serviceFilePath(site), content: serviceFileContent(url, `${site.name} on ${node}`), mode: 0o600, owner: 'root', group: 'root' };
}

/** Root runs libpq's tools with the service; cd / so that no folder of a site is the working directory. */
function withService(site: Site, command: Script): Script {
  const file = serviceFilePath(site);
  return sh`[ -f ${file} ] || { echo 'no connection to the external database yet: deploy the site first' >&2; exit 1; }
cd / && PGSERVICEFILE=${file} PGSERVICE=${SERVICE} ${command}`;
}

export function dumpExternalCommand(site: Site, dir: string): Script {
  return withService(site, sh`pg_dump -Fc --no-owner --no-acl > ${databaseArchive(dir)}`);
}

/** Objects of the dump are dropped and recreated by the URL's user, so they are its own. */
export function loadExternalCommand(site: Site, dir: string): Script {
  return sh`[ -f ${databaseArchive(dir)} ] || { echo 'kraftwerk: no database in this dump'; exit 0; }
${withService(site, sh`pg_restore --clean --if-exists --no-owner --no-acl --single-transaction --exit-on-error ${`--dbname=service=${SERVICE}`} < ${databaseArchive(dir)}`)}`;
}

/**
 * A backup of an external database cannot be restored on this node (there may
 * be no PostgreSQL here, and the provider's server is the live one): verify
 * reads the whole archive's table of contents instead and counts its tables' data.
 */
export function verifyExternalCommand(dir: string): Script {
  const file = databaseArchive(dir);
  return sh`[ -f ${file} ] || { echo 'the backup has no postgres.dump' >&2; exit 1; }
list=$(pg_restore --list ${file}) || { echo 'pg_restore cannot read postgres.dump' >&2; exit 1; }
printf '%s\\n' "$list" | grep -c ' TABLE DATA ' || true`;
}
