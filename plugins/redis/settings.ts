/**
 * The redis plugin's setting: `redis:` in kraftwerk.yaml. Without it the site
 * gets an ACL user on the node's Redis. With `url: env` Redis is managed
 * elsewhere (ElastiCache, Memorystore): REDIS_URL comes from the user
 * (`kraftwerk env set`, or `secrets:`) and nothing is provisioned.
 */
import { z } from '../../core/index.ts';

export const REDIS_SETTINGS = {
  redis: z
    .strictObject({
      url: z.literal('env').describe('"env": REDIS_URL is set by you (kraftwerk env set, or secrets:); nothing is provisioned'),
    })
    .optional()
    .describe('Where the site\'s Redis is (default: an ACL user on the node\'s Redis)'),
};
