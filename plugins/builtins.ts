import type { BuiltinPlugins } from '../core/index.ts';

/**
 * The built-in stack plugins and the order they apply in. The CLI wiring
 * (core/cli/main.ts) hands this table to core; core names no plugin itself.
 * Loaders are lazy (`kraftwerk --help` imports none of them).
 */
export const stackPlugins = {
  load: {
    python: () => import('./python/index.ts'),
    uwsgi: () => import('./uwsgi/index.ts'),
    runit: () => import('./runit/index.ts'),
    nginx: () => import('./nginx/index.ts'),
    files: () => import('./files/index.ts'),
    postgres: () => import('./postgres/index.ts'),
    redis: () => import('./redis/index.ts'),
    processes: () => import('./processes/index.ts'),
    cron: () => import('./cron/index.ts'),
    backups: () => import('./backups/index.ts'),
    tls: () => import('./tls/index.ts'),
    notify: () => import('./notify/index.ts'),
    django: () => import('./django/index.ts'),
    lb: () => import('./lb/index.ts'),
  },
  // lb does nothing unless the group has a load balancer node (a node with the lb role and not web).
  stack: ['python', 'uwsgi', 'runit', 'nginx', 'lb'],
  services: ['files', 'postgres', 'redis'],
  // Each does nothing while its key (`processes:`, `cron:`, `backups:`, `notify:`) is empty,
  // except that `tls` removes certificates an earlier `tls:` left once it is turned off;
  // `django` does nothing unless a release command runs Django's migrate.
  site: ['processes', 'cron', 'backups', 'tls', 'notify', 'django'],
  // The original equipped every server with both PostgreSQL and Redis.
  node: ['python', 'uwsgi', 'runit', 'nginx', 'postgres', 'redis', 'cron'],
} satisfies Omit<BuiltinPlugins, 'commands'>;
