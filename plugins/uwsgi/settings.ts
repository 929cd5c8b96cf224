/**
 * The settings of the uwsgi plugin: `workers:` and `uwsgi:` in kraftwerk.yaml.
 * Where their values end up, and what keeps them from adding a line or an
 * option there (uwsgiIniValue in escape.ts is the second line):
 *
 *     key             reaches                                   checked as
 *     workers         uWSGI ini                                 a bounded integer
 *     uwsgi.*         uWSGI ini, nginx uwsgi_read_timeout       bounded integers
 *
 * (`wsgi:`, the application's module and callable, is core's: see core/config/schema.ts.)
 */
import { z } from '../../core/index.ts';

/** The keys of kraftwerk.yaml the uwsgi plugin owns; nginx reads `uwsgi.harakiri` too (its read timeout follows it). */
export const UWSGI_SETTINGS = {
  workers: z.number().int().min(1).max(256).default(2).describe('Number of uWSGI worker processes'),
  uwsgi: z
    .strictObject({
      harakiri: z.number().int().min(1).max(86400).default(60).describe('Seconds before a stuck request is killed'),
      max_requests: z.number().int().min(0).max(1e9).default(5000).describe('Requests before a worker is recycled (0: never)'),
    })
    .optional()
    .describe('Tuning of uWSGI'),
};
