/**
 * postgres (service): a role and a database per site on the node's PostgreSQL.
 * The role is named like the site's system user, so peer authentication over
 * the local socket lets the site in with no password anywhere.
 */
import { definePlugin, isProvisioned, provisionMarker, sh, Stage, type Command, type Hooks, type Site } from '../../core/index.ts';

const PLUGIN_NAME = 'postgres';

export const SOCKET_DIR = '/var/run/postgresql';

export interface PostgresNames {
  database: string;
  role: string;
}

export function postgresNames(site: Site): PostgresNames {
  return { database: site.name, role: site.user };
}

export function databaseUrl(site: Site): string {
  return `postgresql:///${postgresNames(site).database}?host=${SOCKET_DIR}`;
}

/**
 * SQL that creates what is missing. Names arrive as psql variables and are
 * quoted by format('%I'), so no name is ever pasted into SQL. It prints
 * `created role` / `created database` for what it made.
 * Other roles lose CONNECT on the database: sites on one node do not see each other's data.
 */
export const PROVISION_SQL = `SELECT 'created role' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role');
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
SELECT 'created database' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db');
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \\gexec
`;

/** psql as the postgres superuser with the site's names as variables; the SQL (PROVISION_SQL, DROP_SQL) comes on stdin. */
export function adminPsqlCommand(site: Site): Command {
  const { database, role } = postgresNames(site);
  return sh`cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -v ${`role=${role}`} -v ${`db=${database}`} -d postgres`;
}

/** Node setup: a cluster exists and runs. Prints what it changed. */
export function clusterCommand(): Command {
  return sh`set -e
if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  pg_createcluster "$version" main >/dev/null
  echo "created PostgreSQL $version cluster main"
fi
if pg_lsclusters -h | awk '$4 != "online" { found = 1 } END { exit !found }'; then
  service postgresql start >/dev/null
  echo 'started PostgreSQL'
fi`;
}

/** The database in a dump folder (pg_dump's custom format). */
export function databaseArchive(dir: string): string {
  return `${dir}/postgres.dump`;
}

/** pg_dump as the superuser; root's shell writes the file (dump folders are root's only). */
export function dumpDatabaseCommand(site: Site, dir: string): Command {
  return sh`cd / && runuser -u postgres -- pg_dump -Fc --no-owner ${`--dbname=${postgresNames(site).database}`} > ${databaseArchive(dir)}`;
}

/**
 * Restore a dump into the site's database in one transaction: objects of the
 * dump are dropped and recreated as the site's role, so they stay its own.
 */
export function loadDatabaseCommand(site: Site, dir: string): Command {
  const { database, role } = postgresNames(site);
  return sh`[ -f ${databaseArchive(dir)} ] || { echo 'kraftwerk: no database in this dump'; exit 0; }
cd / && runuser -u postgres -- pg_restore --clean --if-exists --no-owner ${`--role=${role}`} --single-transaction --exit-on-error ${`--dbname=${database}`} < ${databaseArchive(dir)}`;
}

/** SQL (stdin of adminPsqlCommand's psql) that removes the site's database (closing its connections) and role. */
export const DROP_SQL = `SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'db') \\gexec
SELECT format('DROP ROLE IF EXISTS %I', :'role') \\gexec
`;

export default definePlugin({
  name: PLUGIN_NAME,
  description: 'PostgreSQL role and database per site, peer authentication over the local socket (DATABASE_URL)',
  apply(hooks: Hooks, site: Site) {
    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add(PLUGIN_NAME, 'postgresql');
      tasks.add({
        title: 'PostgreSQL running',
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(clusterCommand());
          const changes = stdout.split('\n').filter(Boolean);
          ctx.changes.push(...changes);
          task.title(changes.length ? `PostgreSQL: ${changes.join('; ')}` : 'PostgreSQL running (unchanged)');
        },
      });
    });

    hooks.environment.tap(PLUGIN_NAME, (_ctx, env) => {
      const { database, role } = postgresNames(site);
      env.set('DATABASE_URL', databaseUrl(site));
      env.set('POSTGRES_DATABASE', database);
      env.set('POSTGRES_USER', role);
    });

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      const { database, role } = postgresNames(site);
      // Provisioned by an earlier deploy with the same SQL and names: nothing to do, no command.
      const marker = provisionMarker(site, PLUGIN_NAME, PROVISION_SQL, database, role);
      ctx.probe.read(marker.path);
      tasks.add({
        title: 'PostgreSQL database',
        // After core created the site user (the role is named after it), before release commands migrate.
        stage: Stage.PREPARE,
        skip: (c) => (isProvisioned(c.facts, marker) ? `PostgreSQL database ${database} (unchanged)` : false),
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(adminPsqlCommand(site), { stdin: PROVISION_SQL });
          const made = stdout.split('\n').filter((l) => l.startsWith('created'));
          ctx.files.add(marker);
          task.title(made.length ? `PostgreSQL: ${made.join(', ')} ${database} (owner ${role})` : `PostgreSQL database ${database} (unchanged)`);
        },
      });
    });

    hooks.dump.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'PostgreSQL database',
        run: async (ctx) => {
          await ctx.remote.exec(dumpDatabaseCommand(site, ctx.dir));
        },
      });
    });

    hooks.load.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'PostgreSQL database',
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(loadDatabaseCommand(site, ctx.dir));
          task.title(stdout.includes('no database in this dump') ? 'PostgreSQL (nothing in this dump)' : `PostgreSQL database ${postgresNames(site).database} restored`);
        },
      });
    });

    hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'remove database and role',
        // After the site's services stopped (their connections would be cut anyway).
        stage: Stage.LATE,
        run: async (ctx, task) => {
          await ctx.remote.exec(adminPsqlCommand(site), { stdin: DROP_SQL });
          const { database, role } = postgresNames(site);
          task.title(`removed database ${database} and role ${role}`);
        },
      });
    });
  },
});
