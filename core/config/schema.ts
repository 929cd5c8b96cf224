import { z } from 'zod';

/**
 * The schema of kraftwerk.yaml. Every key is checked before anything touches a
 * server; unknown keys are errors (the original tool ignored them silently).
 * The JSON Schema that editors use is generated from this (`kraftwerk schema`).
 */

const hostname = z
  .string()
  .regex(
    /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i,
    'a host name such as www.example.com (letters, digits, dots and dashes; no spaces, no scheme, no path)',
  );

/** Site name: also the system user, database and runit service name. */
export const siteName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,27}$/, 'a lower-case name: a letter, then letters, digits, - or _, at most 28 characters');

const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name (letters, digits and _, not starting with a digit)');

const envValue = z.union([z.string(), z.number(), z.boolean()]);

const node = z.union([
  z.string().min(1).describe('host name or ~/.ssh/config alias'),
  z
    .strictObject({
      host: z.string().min(1).describe('host name, address or ~/.ssh/config alias'),
      user: z.string().min(1).optional().describe('login user (default root, or what ~/.ssh/config says)'),
      port: z.number().int().min(1).max(65535).optional(),
      identity_file: z.string().optional().describe('private key file'),
      sudo: z.boolean().optional().describe('run commands through sudo (login user is not root)'),
    })
    .describe('one server'),
  z.array(z.string().min(1)).min(1).describe('a group: names of other nodes deployed together'),
]);

const cronEntry = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a short name (letters, digits, - and _)').optional(),
  schedule: z
    .string()
    .refine(
      (s) => /^@(reboot|yearly|annually|monthly|weekly|daily|hourly)$/.test(s) || s.trim().split(/\s+/).length === 5,
      'a cron schedule of five fields ("*/5 * * * *") or @hourly, @daily, …',
    ),
  command: z.string().min(1),
});

const healthcheck = z.union([
  z.literal(false),
  z.strictObject({
    path: z.string().startsWith('/').default('/'),
    status: z
      .union([z.number().int().min(100).max(599), z.array(z.number().int().min(100).max(599)).min(1)])
      .optional()
      .describe('expected status code(s); default any 2xx or 3xx'),
    timeout: z.number().positive().default(10).describe('seconds per attempt'),
    retries: z.number().int().min(0).default(5),
  }),
]);

const tls = z.union([
  z.literal(false),
  z.strictObject({
    email: z.string().email().optional(),
    provider: z.enum(['letsencrypt', 'self-signed']).default('letsencrypt'),
    staging: z.boolean().default(false),
    acme_server: z.string().url().optional().describe('ACME directory URL (any ACME CA)'),
    hsts: z.union([z.boolean(), z.number().int().min(0)]).default(false).describe('true or max-age in seconds'),
  }),
]);

const staticFiles = z.union([
  z.string(),
  z.strictObject({
    path: z.string().default('static').describe('folder in the project'),
    url: z.string().startsWith('/').default('/static/'),
    expires: z.string().default('30d').describe('nginx expires value'),
  }),
]);

export const configSchema = z
  .strictObject({
    $schema: z.string().optional(),
    domain: z.union([hostname, z.array(hostname).min(1)]).describe('domain(s) the site answers on; the first is canonical'),
    aliases: z.array(hostname).default([]).describe('domains redirected (301) to the canonical domain'),
    services: z.array(z.string()).default([]).describe('plugins to enable: files, postgres, redis, …'),
    workers: z.number().int().min(1).max(256).default(2).describe('uWSGI worker processes'),
    wsgi: z
      .string()
      .regex(/^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$/, 'module[:callable], e.g. project.wsgi or app:app')
      .optional()
      .describe('WSGI module[:callable]; callable defaults to application'),
    environ: z.record(envName, envValue).default({}).describe('environment of the site (no secrets: use kraftwerk env set)'),
    package: siteName.optional().describe('site name; defaults to the project folder name'),
    src: z.string().default('.').describe('folder to deploy, relative to the config file'),
    nodes: z.record(z.string().regex(/^[A-Za-z0-9][\w.-]*$/, 'a node name'), node).default({}),
    default_node: z.string().optional(),
    static: staticFiles.optional(),
    requirements: z.string().default('requirements.txt'),
    apt: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name')).default([]),
    processes: z
      .record(z.string().regex(/^[a-z][a-z0-9_-]*$/, 'a process name (lower-case letters, digits, - and _)'), z.string().min(1))
      .default({}),
    cron: z.array(cronEntry).default([]),
    release: z.array(z.string().min(1)).default([]).describe('commands run in the new release before it goes live'),
    healthcheck: healthcheck.default({ path: '/', timeout: 10, retries: 5 }),
    keep_releases: z.number().int().min(1).default(5),
    exclude: z.array(z.string()).default([]).describe('rsync exclude patterns'),
    plugins: z
      .array(
        z.union([
          z.string().min(1),
          // kraftwerk.config.ts may import plugin objects directly.
          z.custom<{ name: string; apply?: unknown }>(
            (v) => typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string',
            'a plugin object with a name',
          ),
        ]),
      )
      .default([])
      .describe('project-local plugin files (.ts or .js), relative to the config file'),
    backups: z
      .strictObject({
        schedule: z.string().default('@daily'),
        keep: z.number().int().min(1).default(7),
      })
      .optional(),
    tls: tls.default(false),
    uwsgi: z
      .strictObject({
        harakiri: z.number().int().min(1).default(60).describe('seconds before a stuck request is killed'),
        max_requests: z.number().int().min(0).default(5000),
      })
      .optional(),
    nginx: z
      .strictObject({
        client_max_body_size: z.string().regex(/^\d+[kKmMgG]?$/, 'a size such as 10m').default('10m'),
      })
      .optional(),
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
