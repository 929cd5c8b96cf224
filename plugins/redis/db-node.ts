/**
 * The redis plugin in a group whose nodes declare roles: Redis is on the
 * node with role `redis` (or `db`), bound to its private address and
 * loopback, TLS only; the app nodes reach it with the site's ACL user and a
 * password made on that node, handed over as postgres's is (core's
 * tapNodeService; network.ts for the files).
 */
import { type Hooks, type NodeService, type Script, type Site, Stage, tapNodeService } from '../../core/index.ts';
import { clientCertPath, networkRedisUrl, passwordPath, PORT, redisNetworkSetupCommand, redisPasswordCommand, renderRedisNetworkConf } from './network.ts';

export const SERVICE: NodeService = { service: 'redis', role: 'redis', port: PORT, clientRoles: ['web', 'worker', 'cron'] };

/** What index.ts knows of the site's ACL user: its name, key prefix, the apply command over TLS and its stdin for a password; redis.conf. */
export interface SiteAcl {
  user: string;
  prefix: string;
  apply: Script;
  commands: (password: string) => string;
  redisConf: string;
}

export function applyDbNode(hooks: Hooks, site: Site, acl: SiteAcl): void {
  tapNodeService(hooks, site, SERVICE, {
    label: 'Redis',
    setup: {
      // The group through which redis reads the node key (setup adds redis to it).
      packages: ['ssl-cert'],
      keyGroup: 'ssl-cert',
      // After Redis runs with its ACL file (the plugin's own setup task), and after PostgreSQL's (Stage.LATE) on a shared db node.
      stage: Stage.LATE + 10,
      command: (address) => ({ command: redisNetworkSetupCommand(acl.redisConf), stdin: renderRedisNetworkConf(address) }),
    },
    serve: {
      command: redisPasswordCommand(site.name),
      then: async (c, { password, clients }) => {
        const { stdout } = await c.remote.exec(acl.apply, { stdin: acl.commands(password) });
        return `Redis user ${acl.user} (keys ${acl.prefix}*) ${stdout.includes('kraftwerk: changed') ? 'updated' : 'unchanged'}, for ${clients.join(', ')} over TLS`;
      },
    },
    forget: { files: [passwordPath(site.name)] },
    client: {
      variable: 'REDIS_URL',
      user: acl.user,
      certPath: clientCertPath(site.name),
      url: (password, address) => networkRedisUrl(acl.user, password, address, clientCertPath(site.name)),
      more: { REDIS_KEY_PREFIX: acl.prefix },
    },
  });
}
