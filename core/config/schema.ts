import { z } from 'zod';
import type { Plugin } from '../plugin.ts';

/**
 * The schema of kraftwerk.yaml. Every key is checked before anything touches a
 * server; unknown keys are errors (the original tool ignored them silently).
 * The JSON Schema that editors use is generated from this (`kraftwerk schema`).
 *
 * Messages given here are noun phrases ("a host name such as …"): the loader
 * prints them as "expected <message>, found <value>". Descriptions show up as
 * editor hover text and as the comments `kraftwerk init` writes.
 */

// No /i flag: JSON Schema patterns have no flags, and editors would then reject capitals.
const hostname = z
  .string()
  .regex(
    /^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/,
    'a host name such as www.example.com (letters, digits, dots and dashes; no spaces, no scheme, no path)',
  );

/** Site name: also the system user, database and runit service name. */
export const siteName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,27}$/, 'a lower-case name: a letter, then letters, digits, - or _, at most 28 characters');

const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name (letters, digits and _, not starting with a digit)');

const envValue = z.union([z.string(), z.number(), z.boolean()], { error: 'a string, a number or true/false' });

const singleLine = (what: string) => z.string().min(1).regex(/^[^\r\n]*$/, `${what} on one line`);

const node = z.union(
  [
    z.string().min(1).describe('Host name or ~/.ssh/config alias'),
    z
      .strictObject({
        host: z.string().min(1).describe('Host name, address or ~/.ssh/config alias'),
        user: z.string().min(1).optional().describe('Login user (default root, or what ~/.ssh/config says)'),
        port: z.number().int().min(1).max(65535).optional().describe('SSH port (default 22, or what ~/.ssh/config says)'),
        identity_file: z.string().optional().describe('Private key file'),
        sudo: z.boolean().optional().describe('Run commands through sudo (login user is not root)'),
      })
      .describe('One server'),
    z.array(z.string().min(1)).min(1).describe('A group: names of other nodes deployed together'),
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
  const fields = schedule.trim().split(/\s+/);
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
    .regex(/^[a-z0-9][a-z0-9_-]*$/, 'a short name (lower-case letters, digits, - and _)')
    .optional()
    .describe('Short name shown in logs'),
  schedule: cronSchedule.describe('Five cron fields ("*/5 * * * *") or @hourly, @daily, …'),
  command: singleLine('a command').describe('Shell command, run in the current release with the site environment'),
});

const httpStatus = z.number().int().min(100).max(599);

const healthcheck = z.union(
  [
    z.literal(false),
    z.strictObject({
      path: z.string().startsWith('/').default('/').describe('URL path requested on the canonical domain'),
      status: z
        .union([httpStatus, z.array(httpStatus).min(1)], { error: 'an HTTP status code or a list of them' })
        .optional()
        .describe('Expected status code(s); default any 2xx or 3xx'),
      timeout: z.number().positive().default(10).describe('Seconds per attempt'),
      retries: z.number().int().min(0).default(5).describe('Attempts after the first before the deploy rolls back'),
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
      acme_server: z.url('an https URL').optional().describe('ACME directory URL (any ACME CA)'),
      hsts: z.union([z.boolean(), z.number().int().min(0)], { error: 'true/false or max-age in seconds' }).default(false).describe('True or max-age in seconds'),
    }),
  ],
  { error: 'false, or a mapping {email, provider, staging, acme_server, hsts}' },
);

const staticFiles = z.union(
  [
    z.string().min(1).describe('Folder in the project, served at /static/'),
    z.strictObject({
      path: z.string().default('static').describe('Folder in the project'),
      url: z.string().startsWith('/').default('/static/').describe('URL prefix'),
      expires: z.string().default('30d').describe('Value of the nginx expires directive for these files'),
    }),
  ],
  { error: 'a folder name, or a mapping {path, url, expires}' },
);

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
    src: z.string().min(1).default('.').describe('Folder to deploy, relative to the config file'),
    nodes: z
      .record(z.string().regex(/^[A-Za-z0-9][\w.-]*$/, 'a node name (letters, digits, ., _ and -)'), node)
      .default({})
      .describe('Named servers: a host, a {host, user, port, identity_file, sudo} mapping, or a group of node names'),
    default_node: z.string().min(1).optional().describe('Node used when a command names none'),
    static: staticFiles.optional().describe('Static files nginx serves from the current release'),
    requirements: z.string().min(1).default('requirements.txt').describe('Requirements file for pip, relative to src'),
    apt: z
      .array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name'))
      .default([])
      .describe('Extra Debian packages installed by setup-node'),
    processes: z
      .record(
        z.string().regex(/^[a-z][a-z0-9_-]*$/, 'a process name (lower-case letters, digits, - and _)'),
        singleLine('a command'),
      )
      .default({})
      .describe('Worker processes supervised by runit: name → command'),
    cron: z.array(cronEntry).default([]).describe('Scheduled commands: {name, schedule, command}'),
    release: z.array(singleLine('a command')).default([]).describe('Commands run in the new release before it goes live (migrations)'),
    healthcheck: healthcheck
      .default({ path: '/', timeout: 10, retries: 5 })
      .describe('Request checked after the switch; the deploy rolls back when it fails (false: no check)'),
    keep_releases: z.number().int().min(1).default(5).describe('Releases kept on the server for rollback'),
    exclude: z.array(z.string().min(1)).default([]).describe('Files not deployed (rsync exclude patterns)'),
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
        harakiri: z.number().int().min(1).default(60).describe('Seconds before a stuck request is killed'),
        max_requests: z.number().int().min(0).default(5000).describe('Requests before a worker is recycled (0: never)'),
      })
      .optional()
      .describe('Tuning of uWSGI'),
    nginx: z
      .strictObject({
        client_max_body_size: z
          .string()
          .regex(/^\d+[kKmMgG]?$/, 'a size such as 10m')
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
