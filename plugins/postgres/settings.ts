/**
 * The postgres plugin's setting: `postgres:` in kraftwerk.yaml. Without it the
 * site gets a role and a database on the node's own PostgreSQL. With
 * `url: env` the database is managed elsewhere (RDS, Cloud SQL, a server of
 * the user's): DATABASE_URL comes from the user (`kraftwerk env set`, or
 * `secrets:`), nothing is provisioned, and dump, load and backups go to that URL.
 */
import { z } from '../../core/index.ts';

export const POSTGRES_SETTINGS = {
  postgres: z
    .strictObject({
      url: z.literal('env').describe('"env": DATABASE_URL is set by you (kraftwerk env set, or secrets:); nothing is provisioned'),
    })
    .optional()
    .describe('Where the site\'s database is (default: a database on the node\'s PostgreSQL)'),
};
