/**
 * The postgres plugin's hooks for a group whose nodes declare roles: the
 * database is on the node with role `postgres` (or `db`), the app nodes
 * (web, worker, cron) reach it over the private network with TLS and a
 * password (see network.ts for the files). The password is made on the db
 * node; its deploy runs first (role postgres is `first`) and hands it, with
 * the node certificate, to the app nodes' environment through
 * `ctx.topology.shared`: it never travels in a command line, and it is a
 * Secret (masked) from the moment this process reads it.
 */
import { forgetClients, hasRole, type Hooks, type NodeService, type Script, serveClients, setUpServiceNode, type Site, Stage, tapServiceClients } from '../../core/index.ts';
import { clientCertPath, hbaFragmentPath, hbaReloadCommand, passwordPath, networkDatabaseUrl, networkSetupCommand, PORT, renderHbaFragment, renderNetworkConf, serverProvisionCommand } from './network.ts';

/** The service as the core helpers see it: the app nodes (web, worker, cron) are its clients. */
export const SERVICE: NodeService = { service: 'postgres', role: 'postgres', port: PORT, clientRoles: ['web', 'worker', 'cron'] };

/** `provision`: the superuser's psql with the site's names, and the SQL that makes its role and database (index.ts). */
export function applyDbNode(hooks: Hooks, site: Site, names: { database: string; role: string }, provision: { psql: Script; sql: string }): void {
  hooks.setupNode.tap(SERVICE.service, (ctx, tasks, packages) => {
    if (!ctx.topology.declared || !hasRole(ctx, SERVICE.role)) return;
    packages.add('nftables', 'openssl');
    tasks.add({
      title: 'PostgreSQL for the other nodes',
      // After the cluster exists and runs (the plugin's own setup task, Stage.DEFAULT).
      stage: Stage.LATE,
      run: async (c, task) => {
        // Debian's postgres is in ssl-cert: it reads the node key through that group.
        const { address, changes } = await setUpServiceNode(c, SERVICE, 'ssl-cert');
        const conf = await c.remote.exec(networkSetupCommand(), { stdin: renderNetworkConf(address) });
        changes.push(...conf.stdout.split('\n').filter(Boolean));
        c.changes.push(...changes);
        task.title(changes.length ? `PostgreSQL on ${address}: ${changes.join('; ')}` : `PostgreSQL on ${address} with TLS (unchanged)`);
      },
    });
  });

  // The db node: in sync, so that the password is published before any node
  // (this one too, when it also has an app role) computes its environment.
  hooks.sync.tap(SERVICE.service, (ctx, tasks) => {
    if (!ctx.topology.declared || !hasRole(ctx, SERVICE.role)) return;
    tasks.add({
      title: 'PostgreSQL database for the app nodes',
      run: async (c, task) => {
        const { head, clients } = await serveClients(
          c,
          SERVICE,
          // The site's pg_hba lines: root's only (PostgreSQL reads the file they are assembled into).
          (addresses) => [{ path: hbaFragmentPath(site.name), content: renderHbaFragment(names, addresses), mode: 0o600, owner: 'root', group: 'root' }],
          serverProvisionCommand(site.name, provision.psql),
          provision.sql,
        );
        const made = head.filter((l) => l.startsWith('created'));
        task.title(`PostgreSQL: ${made.length ? `${made.join(', ')}, ` : ''}database ${names.database} for ${clients.join(', ')} (hostssl, scram-sha-256)`);
      },
    });
  });

  hooks.destroy.tap(SERVICE.service, (ctx, tasks) => {
    if (!ctx.topology.declared || !hasRole(ctx, SERVICE.role)) return;
    tasks.add({
      title: 'forget the app nodes',
      // After the database and role are dropped (index.ts, Stage.LATE).
      stage: Stage.LATE + 10,
      run: async (c, task) => {
        await forgetClients(c, SERVICE, [hbaFragmentPath(site.name), passwordPath(site.name)], hbaReloadCommand());
        task.title(`removed ${site.name}'s pg_hba lines, password and firewall rules`);
      },
    });
  });

  tapServiceClients(hooks, site, SERVICE, {
    variable: 'DATABASE_URL',
    user: names.role,
    certPath: clientCertPath(site.name),
    url: (password, address) => networkDatabaseUrl(names, password, address, clientCertPath(site.name)),
    more: { POSTGRES_DATABASE: names.database, POSTGRES_USER: names.role },
  });
}
