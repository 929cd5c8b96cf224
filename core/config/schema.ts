import { z } from 'zod';
import { describeChar, NGINX_EXPIRES } from '../shell/escape.ts';
import type { Plugin } from '../engine/plugin.ts';

/**
 * The schema of kraftwerk.yaml. Every key is checked before anything touches a
 * server; unknown keys are errors (the original tool ignored them silently).
 * The JSON Schema that editors use is generated from this (`kraftwerk schema`).
 *
 * Messages given here are noun phrases ("a host name such as …"): the loader
 * prints them as "expected <message>, found <value>". Descriptions show up as
 * editor hover text and as the comments `kraftwerk init` writes.
 *
 * Values in kraftwerk.yaml are trusted as far as intent goes, but a typo must
 * never become an injection (DESIGN.md, trust boundaries): every value that
 * reaches a config file on the node is checked here, so that a hostile one
 * exits 2 naming the file and key before anything touches a server. Where each
 * key ends up, and what keeps it from adding a line, block or directive there
 * (the escapers of core/escape.ts are the second line in the plugins; shell
 * words all go through `sh`):
 *
 *     key                        reaches                                         checked as
 *     domain, aliases            nginx server_name, certbot -d, sites registry   host names (letters, digits, dots, dashes, *.)
 *     package (or folder name)   user kw-<name>, database, role, Redis user,     a name, not a reserved one (postgres, root, …)
 *                                /srv/<name>, runit, nginx, cron.d file names
 *     wsgi                       uWSGI ini module/callable                       Python dotted names
 *     workers, uwsgi.*           uWSGI ini, nginx uwsgi_read_timeout             bounded integers
 *     environ                    envdir files, .kraftwerk/env (sh, quoted)       POSIX names, not the loader's or shell's own; no NUL
 *     static.path (or static)    nginx alias                                     a folder inside the release: no .., no dot parts
 *     static.url                 nginx location                                  a URL path of safe characters
 *     static.expires             nginx expires                                   an nginx time (30d, 12h, max, off, epoch)
 *     nginx.client_max_body_size nginx client_max_body_size                      a size (10m)
 *     healthcheck.path           curl URL, uWSGI request (argv, quoted)          a URL path and query of URL characters
 *     healthcheck.timeout, …     shell words, bounded                            numbers
 *     tls.email, tls.acme_server certbot argv (quoted), its renewal conf         an email address, an https URL
 *     tls.hsts                   nginx add_header                                an integer
 *     processes                  runit service and log folder names, run script  names; commands on one line, no NUL
 *     cron[].name, .schedule     crontab line, log folder, lock file names       names; cron fields only
 *     cron[].command, release    crontab line (% escaped), sh -c (quoted)        one line, no control characters
 *     backups.schedule           crontab line                                    cron fields only
 *     apt                        apt-get argv (quoted)                           Debian package names
 *     requirements               pip -r in the release (quoted)                  a file inside the project: no .., not absolute
 *     nodes.*                    ssh argv after --, messages                     no spaces or control characters
 *     src, exclude, plugins      this machine only (rsync source, patterns)      no control characters
 */

// No /i flag: JSON Schema patterns have no flags, and editors would then reject capitals.
const hostname = z
  .string()
  .max(253, 'a host name of at most 253 characters')
  .regex(
    /^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/,
    'a host name such as www.example.com (letters, digits, dots and dashes; no spaces, no scheme, no path)',
  );

/** What a site name looks like (see `siteName`). */
export const SITE_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,27}$/;
export const SITE_NAME_EXPECTED = 'a lower-case name: a letter, then letters, digits, - or _, at most 28 characters';

/**
 * Names a site may not have, and why. The site name is the database name and
 * part of every other name (user kw-<name>, role, Redis user, /srv/<name>,
 * kraftwerk-<name> services and files); these are the node's own.
 */
const RESERVED_SITE_NAMES: Record<string, string> = {
  postgres: "PostgreSQL's own database and superuser",
  template0: 'a PostgreSQL template database',
  template1: 'a PostgreSQL template database',
  root: 'the superuser',
  admin: 'a common administrator account',
  kraftwerk: "Kraftwerk's own (its Redis admin user, /etc/kraftwerk)",
  redis: "Redis's system user",
  sshd: "OpenSSH's system user",
  ...Object.fromEntries(['daemon', 'bin', 'sys', 'sync', 'nobody', 'www-data', 'messagebus'].map((n) => [n, 'a Debian system user'])),
};

/** Why `name` cannot be a site name although it has the right form, or undefined. */
export function reservedSiteName(name: string): string | undefined {
  if (RESERVED_SITE_NAMES[name]) return `"${name}" is reserved: ${RESERVED_SITE_NAMES[name]}`;
  if (name.startsWith('pg_')) return `"${name}" starts with pg_, which PostgreSQL reserves for its own roles`;
  if (name.startsWith('systemd-')) return `"${name}" starts with systemd-, the prefix of systemd's users`;
  return undefined;
}

/** Site name: also the system user, database and runit service name. */
export const siteName = z
  .string()
  .regex(SITE_NAME_PATTERN, SITE_NAME_EXPECTED)
  .superRefine((name, ctx) => {
    const detail = reservedSiteName(name);
    if (detail) ctx.addIssue({ code: 'custom', message: 'a site name of its own', params: { detail: `${detail}; choose another` } });
  });

/**
 * Variables that root's run scripts would act on when they source the
 * environment (the loader's LD_*, the shell's IFS, ENV, …): setting them is
 * never what a site means, and could make root run a site's file.
 */
export function envNameProblem(name: string): string | undefined {
  if (/^LD_/.test(name)) return `${name} would change how the dynamic loader starts every program, root's included`;
  if (['IFS', 'ENV', 'BASH_ENV', 'CDPATH', 'SHELLOPTS', 'BASHOPTS', 'PS4'].includes(name)) return `${name} would change how the shell runs the run scripts, as root`;
  return undefined;
}

const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name (letters, digits and _, not starting with a digit)')
  .superRefine((name, ctx) => {
    const detail = envNameProblem(name);
    if (detail) ctx.addIssue({ code: 'custom', message: 'a variable the site may set', params: { detail } });
  });

// eslint-disable-next-line no-control-regex
const NO_NUL = /^[^\u0000]*$/;
/** Control characters but tab: they end a line or garble it in every file a value reaches. */
// eslint-disable-next-line no-control-regex
const NO_CONTROL = /^[^\u0000-\u0008\u000a-\u001f\u007f]*$/;

const envValue = z.union(
  [z.string().regex(NO_NUL, 'a value without NUL bytes (no environment can hold one)'), z.number(), z.boolean()],
  { error: 'a string, a number or true/false' },
);

const singleLine = (what: string) =>
  z
    .string()
    .min(1)
    .regex(/^[^\r\n]*$/, `${what} on one line`)
    .regex(NO_CONTROL, `${what} without control characters (NUL, escape, …)`);

/** Text used only on this machine (paths, patterns): no control characters. */
const localText = z.string().min(1).regex(NO_CONTROL, 'text without control characters');

const PATH_PART = /^[A-Za-z0-9_+=,@~-][A-Za-z0-9._+=,@~-]*$/;

/**
 * Why `p` is not a relative path inside the project (and so the release), or
 * undefined: parts of letters, digits and `_ - + = , @ ~` and dots, none
 * starting with a dot, so no `..`, no `.kraftwerk` or `.git`, and no `.` for
 * the whole release (which holds .kraftwerk/env). A leading `./` and a
 * trailing `/` are allowed. These paths reach nginx's `alias` and pip's `-r`.
 */
export function relativePathProblem(p: string): string | undefined {
  if (p.startsWith('/')) return 'it is absolute; give it relative to the project folder';
  const parts = p.replace(/^\.\//, '').replace(/\/$/, '').split('/');
  for (const part of parts) {
    if (part === '..') return '`..` would climb out of the release';
    if (part === '.' || part === '') return p.replace(/^\.\/?/, '') === '' ? 'that is the whole release, with its .kraftwerk/env secrets' : 'it has an empty or `.` part';
    if (part.startsWith('.')) return `the part ${JSON.stringify(part)} starts with a dot (hidden files, Kraftwerk's own .kraftwerk)`;
    const bad = [...part].find((c) => !/[A-Za-z0-9._+=,@~-]/.test(c));
    if (bad !== undefined) return `it has ${describeChar(bad)} (letters, digits and . _ - + = , @ ~ only)`;
    if (!PATH_PART.test(part)) return `the part ${JSON.stringify(part)} is not allowed`;
  }
  return undefined;
}

const relativePath = (what: string, example: string) =>
  z.string().superRefine((p, ctx) => {
    const detail = relativePathProblem(p);
    if (detail) ctx.addIssue({ code: 'custom', message: `${what} such as ${example}`, params: { detail } });
  });

/** A URL path prefix: /, then parts of URL characters that need no quoting anywhere, not . or .. */
// One way to split a path into parts (a slash between each two), so matching stays linear.
const URL_PREFIX = /^\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*(\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*\/?$/;
const urlPrefix = z
  .string()
  .regex(URL_PREFIX, 'a URL path such as /static/ (starting with /; letters, digits and . _ ~ - between the slashes; not / alone)');


/** A URL path with its query, as a client sends it: URL characters only. */
const URL_PATH_QUERY = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;

const nodeName = z.string().regex(/^[A-Za-z0-9][\w.-]*$/, 'a node name (letters, digits, ., _ and -)');

/** A host or user for ssh: one word (ssh gets it after `--`). */
const sshWord = z.string().regex(/^[^\s\u0000-\u001f\u007f-][^\s\u0000-\u001f\u007f]*$/, 'one word without spaces or control characters, not starting with -');

const node = z.union(
  [
    sshWord.describe('Host name or ~/.ssh/config alias'),
    z
      .strictObject({
        host: sshWord.describe('Host name, address or ~/.ssh/config alias'),
        user: sshWord.optional().describe('Login user (default root, or what ~/.ssh/config says)'),
        port: z.number().int().min(1).max(65535).optional().describe('SSH port (default 22, or what ~/.ssh/config says)'),
        identity_file: localText.optional().describe('Private key file'),
        sudo: z.boolean().optional().describe('Run commands through sudo (login user is not root)'),
      })
      .describe('One server'),
    z.array(nodeName).min(1).describe('A group: names of other nodes deployed together'),
  ],
  { error: 'a host name, a mapping {host, user, port, identity_file, sudo} or a list of node names (a group)' },
);

const cronFields = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;

const CRON_EXPECTED =
  'a cron schedule: five fields, minute hour day-of-month month day-of-week ("*/5 * * * *", "30 2 * * mon-fri"), or @hourly, @daily, @weekly, @monthly, @yearly, @reboot';

/**
 * Why a cron schedule is invalid, or undefined when it is fine. The schedule
 * ends up in a crontab line, so anything but the documented syntax is refused.
 */
export function cronScheduleProblem(schedule: string): string | undefined {
  if (/^@(reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)$/.test(schedule)) return undefined;
  // Fields are separated by spaces and tabs only: a newline would end the crontab line.
  if (!/^[ \t]*[^\s]+([ \t]+[^\s]+)*[ \t]*$/.test(schedule)) return 'it must be on one line, its fields separated by spaces';
  const fields = schedule.trim().split(/[ \t]+/);
  if (fields.length !== 5) return `it has ${fields.length} field${fields.length === 1 ? '' : 's'}, not 5`;
  for (const [i, field] of fields.entries()) {
    const spec = cronFields[i]!;
    const names: readonly string[] = 'names' in spec ? spec.names : [];
    const value = (token: string): number | undefined => {
      if (/^\d+$/.test(token)) return Number(token);
      const n = names.indexOf(token.toLowerCase());
      return n < 0 ? undefined : n + spec.min;
    };
    for (const part of field.split(',')) {
      const m = /^(\*|([0-9a-zA-Z]+)(?:-([0-9a-zA-Z]+))?)(?:\/(\d+))?$/.exec(part);
      const bad = `the ${spec.name} field "${field}" is not valid (${spec.min}-${spec.max}${names.length ? `, ${names[0]}-${names.at(-1)}` : ''}, *, ranges a-b, lists a,b and steps */n)`;
      if (!m) return bad;
      const [, , from, to, step] = m;
      for (const token of [from, to]) {
        if (token === undefined) continue;
        const v = value(token);
        if (v === undefined || v < spec.min || v > spec.max) return bad;
      }
      if (step !== undefined && Number(step) < 1) return bad;
    }
  }
  return undefined;
}

/** A cron schedule; the issue says what is wrong with it (`params.detail`) besides what is expected. */
const cronSchedule = z.string().superRefine((s, ctx) => {
  const detail = cronScheduleProblem(s);
  if (detail) ctx.addIssue({ code: 'custom', message: CRON_EXPECTED, params: { detail } });
});

const cronEntry = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, 'a short name (lower-case letters, digits, - and _, at most 40 characters)')
    .optional()
    .describe('Short name shown in logs; also names its log folder and lock file'),
  schedule: cronSchedule.describe('Five cron fields ("*/5 * * * *") or @hourly, @daily, …'),
  command: singleLine('a command').describe('Shell command, run in the current release with the site environment'),
});

const httpStatus = z.number().int().min(100).max(599);

const healthcheck = z.union(
  [
    z.literal(false),
    z.strictObject({
      path: z
        .string()
        .regex(URL_PATH_QUERY, 'a URL path such as /health (starting with /; URL characters only, no spaces or quotes)')
        .default('/')
        .describe('URL path requested on the canonical domain'),
      status: z
        .union([httpStatus, z.array(httpStatus).min(1)], { error: 'an HTTP status code or a list of them' })
        .optional()
        .describe('Expected status code(s); default any 2xx or 3xx'),
      timeout: z.number().positive().max(3600).default(10).describe('Seconds per attempt'),
      retries: z.number().int().min(0).max(1000).default(5).describe('Attempts after the first before the deploy rolls back'),
    }),
  ],
  { error: 'false, or a mapping {path, status, timeout, retries}' },
);

const tls = z.union(
  [
    z.literal(false),
    z.strictObject({
      email: z.email('an email address').optional().describe('Contact address for the certificate authority'),
      provider: z.enum(['letsencrypt', 'self-signed']).default('letsencrypt'),
      staging: z.boolean().default(false).describe("use the CA's staging environment (untrusted test certificates)"),
      // Not z.url(): it silently drops newlines and tabs. certbot writes the URL into its renewal conf, where # starts a comment.
      acme_server: z
        .string()
        .regex(/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9\-._~:/?&=%+,@]*)?$/, 'an https URL such as https://acme.example/directory')
        .optional()
        .describe('ACME directory URL (any ACME CA)'),
      hsts: z.union([z.boolean(), z.number().int().min(0).max(1_000_000_000)], { error: 'true/false or max-age in seconds' }).default(false).describe('True or max-age in seconds'),
    }),
  ],
  { error: 'false, or a mapping {email, provider, staging, acme_server, hsts}' },
);

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

// ---- timeouts (owned by the deploy's fault handling: core/transport, core/releases)
/** A duration as written in kraftwerk.yaml: 90s, 30m, 2h (see core/durations.ts). */
const duration = z.string().regex(/^\d+(\.\d+)?(s|m|h)$/, 'a duration such as 90s, 30m or 2h');

const timeouts = z
  .strictObject({
    release_commands: duration.default('30m').describe('Longest one release command may run; it is then stopped on the node and the deploy fails'),
    install: duration.default('30m').describe('Longest the install of the requirements (pip) may run'),
    healthcheck: duration.default('5m').describe('Longest the health check may take, all attempts together'),
    silence: duration
      .default('10m')
      .describe('Longest a remote command of a deploy may run without printing anything; it is then stopped'),
  })
  .prefault({})
  .describe('Timeouts of a deploy; a command that passes one is stopped on the node, and the error names it, the node and the phase');
// ---- end of timeouts

/** A plugin object given directly in kraftwerk.config.ts (kraftwerk.yaml lists files instead). */
const pluginObject = z.custom<Plugin>(
  (v) =>
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { name?: unknown }).name === 'string' &&
    ['function', 'undefined'].includes(typeof (v as { apply?: unknown }).apply),
  'a plugin object with a name and an apply function',
);

export const configSchema = z
  .strictObject({
    $schema: z.string().optional().describe('JSON Schema of this file, for editors'),
    domain: z
      .union([hostname, z.array(hostname).min(1)], { error: 'a host name such as www.example.com, or a list of them' })
      .describe('Domain(s) the site answers on; the first is canonical'),
    aliases: z.array(hostname).default([]).describe('Domains redirected (301) to the canonical domain'),
    services: z.array(z.string().min(1)).default([]).describe('Service plugins to enable: files, postgres, redis'),
    workers: z.number().int().min(1).max(256).default(2).describe('Number of uWSGI worker processes'),
    wsgi: z
      .string()
      .regex(/^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$/, 'module[:callable], e.g. project.wsgi or app:app')
      .optional()
      .describe('WSGI module[:callable]; the callable defaults to application'),
    environ: z.record(envName, envValue).default({}).describe('Environment of the site (no secrets here: use kraftwerk env set)'),
    package: siteName.optional().describe('Site name (system user, database, service names); defaults to the project folder name'),
    src: localText.default('.').describe('Folder to deploy, relative to the config file'),
    nodes: z
      .record(nodeName, node)
      .default({})
      .describe('Named servers: a host, a {host, user, port, identity_file, sudo} mapping, or a group of node names'),
    default_node: nodeName.optional().describe('Node used when a command names none'),
    static: staticFiles.optional().describe('Static files nginx serves from the current release'),
    requirements: relativePath('a file of the project', 'requirements.txt or requirements/production.txt').default('requirements.txt').describe('Requirements file for pip, relative to src'),
    apt: z
      .array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name'))
      .default([])
      .describe('Extra Debian packages installed by setup-node'),
    processes: z
      .record(
        z.string().regex(/^[a-z][a-z0-9_-]{0,39}$/, 'a process name (lower-case letters, digits, - and _, at most 40 characters)'),
        singleLine('a command'),
      )
      .default({})
      .describe('Worker processes supervised by runit: name → command'),
    cron: z.array(cronEntry).default([]).describe('Scheduled commands: {name, schedule, command}'),
    release: z.array(singleLine('a command')).default([]).describe('Commands run in the new release before it goes live (migrations)'),
    healthcheck: healthcheck
      .default({ path: '/', timeout: 10, retries: 5 })
      .describe('Request checked after the switch; the deploy rolls back when it fails (false: no check)'),
    timeouts,
    keep_releases: z.number().int().min(1).max(1000).default(5).describe('Releases kept on the server for rollback'),
    exclude: z.array(localText).default([]).describe('Files not deployed (rsync exclude patterns)'),
    plugins: z
      .array(
        z.union([z.string().min(1), pluginObject], {
          error: 'a path of a plugin file (.ts or .js), or a plugin object in kraftwerk.config.ts',
        }),
      )
      .default([])
      .describe('Project-local plugin files (.ts or .js), relative to the config file'),
    backups: z
      .strictObject({
        schedule: cronSchedule
          .default('@daily')
          .describe('Cron schedule of automatic backups'),
        keep: z.number().int().min(1).default(7).describe('Backups kept on the server'),
        verify: z
          .boolean()
          .default(false)
          .describe('Restore each backup into scratch space on the node and check it (kraftwerk backup verify) before it counts'),
      })
      .optional()
      .describe('Scheduled backups of the database and uploads'),
    tls: tls.default(false).describe('HTTPS certificates (false: plain HTTP only)'),
    uwsgi: z
      .strictObject({
        harakiri: z.number().int().min(1).max(86400).default(60).describe('Seconds before a stuck request is killed'),
        max_requests: z.number().int().min(0).max(1e9).default(5000).describe('Requests before a worker is recycled (0: never)'),
      })
      .optional()
      .describe('Tuning of uWSGI'),
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
  })
  .describe('Kraftwerk site configuration');

/** kraftwerk.yaml as written by the user (before defaults). */
export type ConfigInput = z.input<typeof configSchema>;
/** kraftwerk.yaml after validation, with defaults applied. */
export type Config = z.output<typeof configSchema>;
export type NodeSpec = z.output<typeof node>;
export type CronEntry = z.output<typeof cronEntry>;

/** Programmatic form for kraftwerk.config.ts: `export default defineConfig({...})`. */
export function defineConfig(config: ConfigInput): ConfigInput {
  return config;
}
