/**
 * The postgres plugin in a group whose nodes declare roles: the database is
 * on the node with role `postgres` (or `db`), the app nodes (web, worker,
 * cron) reach it over the private network with TLS and a password (see
 * network.ts for the files). The password is made on the db node; its deploy
 * runs first (role postgres is `first`) and hands it, with the node
 * certificate, to the app nodes' environment through `ctx.topology.shared`
 * (core's tapNodeService): it never travels in a command line, and it is a
 * Secret (masked) from the moment this process reads it.
 */
import { type Hooks, type NodeService, type Script, type Site, Stage, tapNodeService } from '../../core/index.ts';
import {
  clientCertPath,
  hbaFragmentPath,
  hbaReloadCommand,
  networkDatabaseUrl,
  networkSetupCommand,
  passwordPath,
  PORT,
  renderHbaFragment,
  renderNetworkConf,
  serverProvisionCommand,
} from './network.ts';

/** The app nodes (web, worker, cron) are its clients. */
export const SERVICE: NodeService = { service: 'postgres', role: 'postgres', port: PORT, clientRoles: ['web', 'worker', 'cron'] };

/** `provision`: the superuser's psql with the site's names, and the SQL that makes its role and database (index.ts). */
export function applyDbNode(hooks: Hooks, site: Site, names: { database: string; role: string }, provision: { psql: Script; sql: string }): void {
  tapNodeService(hooks, site, SERVICE, {
    label: 'PostgreSQL',
    setup: {
      packages: [],
      // Debian's postgres is in ssl-cert.
      keyGroup: 'ssl-cert',
      // After the cluster exists and runs (the plugin's own setup task, Stage.DEFAULT).
      stage: Stage.LATE,
      command: (address) => ({ command: networkSetupCommand(), stdin: renderNetworkConf(address) }),
    },
    serve: {
      // The site's pg_hba lines: root's only (PostgreSQL reads the file they are assembled into).
      files: (addresses) => [{ path: hbaFragmentPath(site.name), content: renderHbaFragment(names, addresses), mode: 0o600, owner: 'root', group: 'root' }],
      command: serverProvisionCommand(site.name, provision.psql),
      stdin: provision.sql,
      then: async (_ctx, { head, clients }) => {
        const made = head.filter((l) => l.startsWith('created'));
        return `PostgreSQL: ${made.length ? `${made.join(', ')}, ` : ''}database ${names.database} for ${clients.join(', ')} (hostssl, scram-sha-256)`;
      },
    },
    forget: { files: [hbaFragmentPath(site.name), passwordPath(site.name)], after: hbaReloadCommand() },
    client: {
      variable: 'DATABASE_URL',
      user: names.role,
      certPath: clientCertPath(site.name),
      url: (password, address) => networkDatabaseUrl(names, password, address, clientCertPath(site.name)),
      more: { POSTGRES_DATABASE: names.database, POSTGRES_USER: names.role },
    },
  });
}
