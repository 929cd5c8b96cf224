/**
 * The redis plugin's hooks for a group whose nodes declare roles: Redis is on
 * the node with role `redis` (or `db`), bound to its private address and
 * loopback, TLS only; the app nodes reach it with the site's ACL user and a
 * password made on that node, handed over as postgres's is (db-node.ts of
 * postgres; core's serveClients and tapServiceClients).
 */
import { forgetClients, hasRole, type Hooks, type NodeService, type Script, serveClients, setUpServiceNode, type Site, Stage, tapServiceClients } from '../../core/index.ts';
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
  hooks.setupNode.tap(SERVICE.service, (ctx, tasks, packages) => {
    if (!ctx.topology.declared || !hasRole(ctx, SERVICE.role)) return;
    packages.add('nftables', 'openssl', 'ssl-cert');
    tasks.add({
      title: 'Redis for the other nodes',
      // After Redis runs with its ACL file (the plugin's own setup task).
      stage: Stage.LATE + 10,
      run: async (c, task) => {
        const { address, changes } = await setUpServiceNode(c, SERVICE, 'ssl-cert');
        const conf = await c.remote.exec(redisNetworkSetupCommand(acl.redisConf), { stdin: renderRedisNetworkConf(address) });
        changes.push(...conf.stdout.split('\n').filter(Boolean));
        c.changes.push(...changes);
        task.title(changes.length ? `Redis on ${address}: ${changes.join('; ')}` : `Redis on ${address} with TLS (unchanged)`);
      },
    });
  });

  hooks.sync.tap(SERVICE.service, (ctx, tasks) => {
    if (!ctx.topology.declared || !hasRole(ctx, SERVICE.role)) return;
    tasks.add({
      title: 'Redis user for the app nodes',
      run: async (c, task) => {
        const { password, clients } = await serveClients(c, SERVICE, () => [], redisPasswordCommand(site.name));
        const { stdout } = await c.remote.exec(acl.apply, { stdin: acl.commands(password) });
        task.title(`Redis user ${acl.user} (keys ${acl.prefix}*) ${stdout.includes('kraftwerk: changed') ? 'updated' : 'unchanged'}, for ${clients.join(', ')} over TLS`);
      },
    });
  });

  hooks.destroy.tap(SERVICE.service, (ctx, tasks) => {
    if (!ctx.topology.declared || !hasRole(ctx, SERVICE.role)) return;
    tasks.add({
      title: 'forget the app nodes',
      // After the ACL user is removed (index.ts, Stage.LATE).
      stage: Stage.LATE + 10,
      run: async (c, task) => {
        await forgetClients(c, SERVICE, [passwordPath(site.name)]);
        task.title(`removed ${site.name}'s Redis password and firewall rules`);
      },
    });
  });

  tapServiceClients(hooks, site, SERVICE, {
    variable: 'REDIS_URL',
    user: acl.user,
    certPath: clientCertPath(site.name),
    url: (password, address) => networkRedisUrl(acl.user, password, address, clientCertPath(site.name)),
    more: { REDIS_KEY_PREFIX: acl.prefix },
  });
}
