import { z } from 'zod';
import { describeChar } from '../shell/escape.ts';

/**
 * The schema of core's keys of kraftwerk.yaml; each plugin declares its own
 * (its `settings`, in plugins/<name>/settings.ts), and settings.ts merges them.
 * Every key is checked before anything touches a server; unknown keys are
 * errors (the original tool ignored them silently). The JSON Schema that
 * editors use is generated from the merged schema (`kraftwerk schema`).
 *
 * Messages given here are noun phrases ("a host name such as …"): the loader
 * prints them as "expected <message>, found <value>". Descriptions show up as
 * editor hover text and as the comments `kraftwerk init` writes.
 *
 * Values in kraftwerk.yaml are trusted as far as intent goes, but a typo must
 * never become an injection (DESIGN.md, trust boundaries): every value that
 * reaches a config file on the node is checked by its schema, so that a
 * hostile one exits 2 naming the file and key before anything touches a
 * server. Where each of core's keys ends up, and what keeps it from adding a
 * line, block or directive there (the escapers of the plugins that write a
 * file are the second line; shell words all go through `sh`); each plugin's
 * settings file has the same table for its keys:
 *
 *     key                        reaches                                         checked as
 *     domain, aliases            nginx server_name, certbot -d, sites registry   host names (letters, digits, dots, dashes, *.)
 *     preview_domain             the same, as <NAME>.<preview_domain>            a host name without *. (core/config/preview.ts)
 *     package (or folder name)   user kw-<name>, database, role, Redis user,     a name, not a reserved one (postgres, root, …)
 *                                /srv/<name>, runit, nginx, cron.d file names
 *     wsgi                       uWSGI ini module/callable                       Python dotted names
 *     environ                    envdir files, .kraftwerk/env (sh, quoted)       POSIX names, not the loader's or shell's own; no NUL
 *     healthcheck.path           curl URL, uWSGI request (argv, quoted)          a URL path and query of URL characters
 *     healthcheck.timeout, …     shell words, bounded                            numbers
 *     release                    sh -c (quoted)                                  one line, no control characters
 *     apt                        apt-get argv (quoted)                           Debian package names
 *     nodes.*                    ssh argv after --, messages                     no spaces or control characters
 *     nodes.*.private_host       other nodes' config files (pg_hba, upstreams,   an IPv4/IPv6 address or a host name
 *                                nftables sets, URLs)
 *     nodes.*.roles              which plugins' tasks run on the node            role names (checked against the
 *                                                                                  known roles, core/engine/topology.ts)
 *     src, exclude, plugins      this machine only (rsync source, patterns)      no control characters
 *
 * `wsgi` is core's although only the application server reads it: it is what
 * every site deployed here is (a WSGI application), the Site model carries it
 * (`site.wsgi`), and another application server plugin would read the same
 * key, which it could not declare a second time.
 */

// No /i flag: JSON Schema patterns have no flags, and editors would then reject capitals.
/** Dot-separated labels of letters, digits and dashes (a label neither starts nor ends with a dash). */
const HOST_LABELS = String.raw`([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?`;
const hostname = z
  .string()
  .max(253, 'a host name of at most 253 characters')
  .regex(
    new RegExp(String.raw`^(\*\.)?${HOST_LABELS}$`),
    'a host name such as www.example.com (letters, digits, dots and dashes; no spaces, no scheme, no path)',
  );

/** A host name that names one host (no `*.`): what a preview's domain is made under. */
const plainHostname = z
  .string()
  .max(253, 'a host name of at most 253 characters')
  .regex(new RegExp(`^${HOST_LABELS}$`), 'a host name without a wildcard, such as previews.example.com');

/** What a site name looks like (see `siteName`). */
export const SITE_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,27}$/;
export const SITE_NAME_EXPECTED = 'a lower-case name: a letter, then letters, digits, - or _, at most 28 characters';

/**
 * Names a site may not have, and why. The site name is part of every name a site
 * has on the node (user kw-<name>, /srv/<name>, its services, files, and whatever
 * its plugins name after it); these are the node's own. Plugins add the names their
 * part of the node owns (`reservesSiteName`: a database's own database, a daemon's user).
 */
const RESERVED_SITE_NAMES: Record<string, string> = {
  root: 'the superuser',
  admin: 'a common administrator account',
  kraftwerk: "Kraftwerk's own (its admin users, /etc/kraftwerk)",
  sshd: "OpenSSH's system user",
  ...Object.fromEntries(['daemon', 'bin', 'sys', 'sync', 'nobody', 'www-data', 'messagebus'].map((n) => [n, 'a Debian system user'])),
};

/** Says why a name cannot be a site name (`"x" is reserved: …`), or undefined. */
export type SiteNameReservation = (name: string) => string | undefined;

/** Why `name` cannot be a site name although it has the right form (core's reasons, then the plugins'), or undefined. */
export function reservedSiteName(name: string, reservations: readonly SiteNameReservation[] = []): string | undefined {
  if (RESERVED_SITE_NAMES[name]) return `"${name}" is reserved: ${RESERVED_SITE_NAMES[name]}`;
  if (name.startsWith('systemd-')) return `"${name}" starts with systemd-, the prefix of systemd's users`;
  for (const reserved of reservations) {
    const why = reserved(name);
    if (why) return why;
  }
  return undefined;
}

/** Site name: also the system user and the name of everything the site has on a node; not one reserved by core or `reservations`. */
export function siteNameSchema(reservations: readonly SiteNameReservation[] = []) {
  return z
    .string()
    .regex(SITE_NAME_PATTERN, SITE_NAME_EXPECTED)
    .superRefine((name, ctx) => {
      const detail = reservedSiteName(name, reservations);
      if (detail) ctx.addIssue({ code: 'custom', message: 'a site name of its own', params: { detail: `${detail}; choose another` } });
    });
}
export const siteName = siteNameSchema();

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

/** One line of text of at least one character, without control characters but tab: a command (`release:`, a plugin's commands). */
export const singleLine = (what: string) =>
  z
    .string()
    .min(1)
    .regex(/^[^\r\n]*$/, `${what} on one line`)
    .regex(NO_CONTROL, `${what} without control characters (NUL, escape, …)`);

/** Text used only on this machine (paths, patterns): no control characters. */
export const localText = z.string().min(1).regex(NO_CONTROL, 'text without control characters');

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

/** A relative path inside the project (see relativePathProblem); `what` and `example` make the message. */
export const relativePath = (what: string, example: string) =>
  z.string().superRefine((p, ctx) => {
    const detail = relativePathProblem(p);
    if (detail) ctx.addIssue({ code: 'custom', message: `${what} such as ${example}`, params: { detail } });
  });

/** A URL path with its query, as a client sends it: URL characters only. */
const URL_PATH_QUERY = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;

/** An IPv4 address (four decimal octets), an IPv6 address (hex groups and colons), or a plain host name. */
const IPV4 = String.raw`((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`;
const IPV6 = String.raw`[0-9a-fA-F:]*:[0-9a-fA-F:]*`;
const privateHost = z
  .string()
  .max(253, 'an address of at most 253 characters')
  .regex(new RegExp(`^(${IPV4}|${IPV6}|${HOST_LABELS})$`), 'an IP address (10.0.0.11, fd00::11) or a host name (letters, digits, dots and dashes)');

const roleName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a role name such as web, worker, db or lb');

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
        roles: z
          .array(roleName)
          .min(1)
          .optional()
          .describe('What this server runs in its group (web, worker, db, lb, and the roles of the plugins: `kraftwerk plugins` lists them); default every role'),
        private_host: privateHost.optional().describe('Address the other nodes of its group reach it at (default: the address host resolves to)'),
      })
      .describe('One server'),
    z.array(nodeName).min(1).describe('A group: names of other nodes deployed together'),
  ],
  { error: 'a host name, a mapping {host, user, port, identity_file, sudo, roles, private_host} or a list of node names (a group)' },
);

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

/**
 * A plugin object given directly in kraftwerk.config.ts (kraftwerk.yaml lists files instead),
 * as far as the config cares: the Plugin type itself is the engine's, which builds on this layer.
 */
interface PluginObject {
  readonly name: string;
  apply?(...args: never[]): void;
}
const pluginObject = z.custom<PluginObject>(
  (v) =>
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { name?: unknown }).name === 'string' &&
    ['function', 'undefined'].includes(typeof (v as { apply?: unknown }).apply),
  'a plugin object with a name and an apply function',
);

/**
 * Core's own keys: what every site has whatever its stack (its names, its
 * code and how it is released, its environment, its nodes). The keys of the
 * stack parts are their plugins' (`settings`, see settings.ts), merged with
 * these into the schema that validates the file.
 */
export const coreConfigShape = {
    $schema: z.string().optional().describe('JSON Schema of this file, for editors'),
    domain: z
      .union([hostname, z.array(hostname).min(1)], { error: 'a host name such as www.example.com, or a list of them' })
      .describe('Domain(s) the site answers on; the first is canonical'),
    aliases: z.array(hostname).default([]).describe('Domains redirected (301) to the canonical domain'),
    preview_domain: plainHostname
      .optional()
      .describe('Previews (deploy --preview NAME) answer at NAME.<preview_domain>; without it at NAME.<canonical domain>'),
    services: z.array(z.string().min(1)).default([]).describe('Service plugins to enable (`kraftwerk plugins` lists them)'),
    wsgi: z
      .string()
      .regex(/^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$/, 'module[:callable], e.g. project.wsgi or app:app')
      .optional()
      .describe('WSGI module[:callable]; the callable defaults to application'),
    environ: z.record(envName, envValue).default({}).describe('Environment of the site (no secrets here: use secrets: or kraftwerk env set)'),
    secrets: z
      .record(envName, singleLine('a command'))
      .default({})
      .describe(
        'Variables whose value a command on the deploying machine prints (op read …, pass show …), run at each deploy; masked in all output, never written to disk here',
      ),
    package: siteName.optional().describe('Site name (system user, database, service names); defaults to the project folder name'),
    src: localText.default('.').describe('Folder to deploy, relative to the config file'),
    nodes: z
      .record(nodeName, node)
      .default({})
      .describe('Named servers: a host, a {host, user, port, identity_file, sudo} mapping, or a group of node names'),
    default_node: nodeName.optional().describe('Node used when a command names none'),
    apt: z
      .array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name'))
      .default([])
      .describe('Extra Debian packages installed by setup-node'),
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
};

/** kraftwerk.yaml with core's keys only (no plugin's): for what a site needs before its plugins are known. */
export const coreConfigSchema = z.strictObject(coreConfigShape).describe('Kraftwerk site configuration');

/** Core's keys of kraftwerk.yaml as written by the user (before defaults). */
export type ConfigInput = z.input<typeof coreConfigSchema>;
/** Core's keys of kraftwerk.yaml after validation, with defaults applied (plugins read theirs with `settingsOf`). */
export type Config = z.output<typeof coreConfigSchema>;
export type NodeSpec = z.output<typeof node>;

/**
 * Programmatic form for kraftwerk.config.ts: `export default defineConfig({...})`.
 * Core's keys are typed; the plugins' keys are checked when the config loads.
 */
export function defineConfig<T extends ConfigInput & Readonly<Record<string, unknown>>>(config: T): T {
  return config;
}
