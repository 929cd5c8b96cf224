/**
 * The settings of the nginx plugin: `static:` and `nginx:` in kraftwerk.yaml.
 * Where their values end up in the site file, and what keeps them from adding
 * a line, block or directive there (nginxValue in escape.ts is the second
 * line, and checkNginxValues checks them again with these same schemas where
 * they are pasted):
 *
 *     key                         reaches                      checked as
 *     static.path (or static)     nginx alias                  a folder inside the release: no .., no dot parts
 *     static.url                  nginx location               a URL path of safe characters
 *     static.expires              nginx expires                an nginx time (30d, 12h, max, off, epoch)
 *     nginx.client_max_body_size  nginx client_max_body_size   a size (10m)
 *
 * (`uwsgi.harakiri` reaches uwsgi_read_timeout too: the uwsgi plugin's setting.)
 */
import { relativePath, z } from '../../core/index.ts';

/** nginx's `expires` values: a time (30d, 12h, 1y, 1h30m, -1), or max, off, epoch. Linear to match (no nested repeats). */
export const NGINX_EXPIRES = /^(max|off|epoch|-?\d{1,9}(ms|s|m|h|d|w|M|y)?(\d{1,9}(ms|s|m|h|d|w|M|y)){0,7})$/;

/** A URL path prefix: /, then parts of URL characters that need no quoting anywhere, not . or .. */
// One way to split a path into parts (a slash between each two), so matching stays linear.
const URL_PREFIX = /^\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*(\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*\/?$/;
const urlPrefix = z
  .string()
  .regex(URL_PREFIX, 'a URL path such as /static/ (starting with /; letters, digits and . _ ~ - between the slashes; not / alone)');

const staticFiles = z.union(
  [
    relativePath('a folder of the project', 'static or build/static').describe('Folder in the project, served at /static/'),
    z.strictObject({
      path: relativePath('a folder of the project', 'static or build/static').default('static').describe('Folder in the project (inside the release; never the release itself)'),
      url: urlPrefix.default('/static/').describe('URL prefix (a missing trailing / is added)'),
      expires: z
        .string()
        .regex(NGINX_EXPIRES, 'an nginx time such as 30d, 12h or 1y, or max, off or epoch')
        .default('30d')
        .describe('Value of the nginx expires directive for these files'),
    }),
  ],
  { error: 'a folder name, or a mapping {path, url, expires}' },
);

/** The keys of kraftwerk.yaml the nginx plugin owns. */
export const NGINX_SETTINGS = {
  static: staticFiles.optional().describe('Static files nginx serves from the current release'),
  nginx: z
    .strictObject({
      client_max_body_size: z
        .string()
        .regex(/^\d{1,9}[kKmMgG]?$/, 'a size such as 10m')
        .default('10m')
        .describe('Largest request body (uploads)'),
    })
    .optional()
    .describe('Tuning of nginx'),
};
