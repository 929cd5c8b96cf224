/**
 * postgres (service): a role and a database per site on the node's PostgreSQL.
 * The role is named like the site's system user, so peer authentication over
 * the local socket lets the site in with no password anywhere.
 */
import { definePlugin, failureReason, isProvisioned, KraftwerkError, provisionMarker, raw, settingsOf, sh, Stage, type Script, type Hooks, type Site, userVariableCheck } from '../../core/index.ts';
import { applyDbNode } from './db-node.ts';
import { dumpExternalCommand, loadExternalCommand, serviceFile, verifyExternalCommand } from './external.ts';
import { databaseArchive } from './paths.ts';
import { POSTGRES_SETTINGS } from './settings.ts';

const PLUGIN_NAME = 'postgres';

export const SOCKET_DIR = '/var/run/postgresql';

export { databaseArchive };

/** `postgres: {url: env}`: the database is managed elsewhere and DATABASE_URL is the user's. */
export function isExternal(site: Site): boolean {
  return settingsOf(site, POSTGRES_SETTINGS).postgres?.url === 'env';
}

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
export function adminPsqlCommand(site: Site): Script {
  const { database, role } = postgresNames(site);
  return sh`cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -v ${`role=${role}`} -v ${`db=${database}`} -d postgres`;
}

/** Node setup: a cluster exists and runs. Prints what it changed. */
export function clusterCommand(): Script {
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

/** pg_dump as the superuser; root's shell writes the file (dump folders are root's only). */
export function dumpDatabaseCommand(site: Site, dir: string): Script {
  return sh`cd / && runuser -u postgres -- pg_dump -Fc --no-owner ${`--dbname=${postgresNames(site).database}`} > ${databaseArchive(dir)}`;
}

/**
 * Restore a dump into the site's database in one transaction: objects of the
 * dump are dropped and recreated as the site's role, so they stay its own.
 */
export function loadDatabaseCommand(site: Site, dir: string): Script {
  const { database, role } = postgresNames(site);
  return sh`[ -f ${databaseArchive(dir)} ] || { echo 'kraftwerk: no database in this dump'; exit 0; }
cd / && runuser -u postgres -- pg_restore --clean --if-exists --no-owner ${`--role=${role}`} --single-transaction --exit-on-error ${`--dbname=${database}`} < ${databaseArchive(dir)}`;
}

/** Prefix of the scratch database (and its role) `backup verify` restores into: `kwverify_<database>_<pid>`. */
export const VERIFY_PREFIX = 'kwverify_';

/**
 * Prove a dump's database restores: into a scratch database owned by a scratch
 * role (NOLOGIN, CONNECT revoked from PUBLIC: no site can reach it), then a row
 * count of every table, printed as `<schema.table> <rows>` lines. pg_restore and
 * the counts run as the scratch role (`--role`, SET ROLE), never as the
 * superuser: the dump holds the site's own functions (index expressions,
 * defaults), and restored as postgres they would run with its rights. Both are
 * dropped on every exit, also a failure or a signal. Root opens the dump (a
 * root-only folder) and hands it to pg_restore on stdin.
 */
export function verifyDatabaseCommand(site: Site, dir: string): Script {
  const file = databaseArchive(dir);
  const psql = (db: Script) => sh`runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -v "name=$name" -d ${db}`;
  return sh`[ -f ${file} ] || { echo 'the backup has no postgres.dump' >&2; exit 1; }
name=${`${VERIFY_PREFIX}${postgresNames(site).database}_`}$$
cd /
cleanup() {
  ${psql(sh`postgres`)} >/dev/null 2>&1 <<'SQL' || true
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'name') \\gexec
SELECT format('DROP ROLE IF EXISTS %I', :'name') \\gexec
SQL
}
trap cleanup EXIT
trap 'exit 130' HUP INT TERM PIPE
${psql(sh`postgres`)} <<'SQL'
SELECT format('CREATE ROLE %I NOLOGIN', :'name') \\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') \\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \\gexec
SQL
[ $? = 0 ] || { echo 'could not create the scratch database' >&2; exit 1; }
runuser -u postgres -- pg_restore --no-owner --no-acl --role="$name" --single-transaction --exit-on-error --dbname="$name" < ${file} || { echo 'pg_restore of postgres.dump failed' >&2; exit 1; }
${psql(raw('"$name"'))} <<'SQL'
SELECT format('SET ROLE %I', :'name') \\gexec
SELECT format('SELECT %L || '' '' || count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  ORDER BY n.nspname, c.relname \\gexec
SQL`;
}

/** `<schema.table> <rows>` lines of verifyDatabaseCommand, summed up. */
export function parseTableCounts(stdout: string): { tables: number; rows: number } {
  const counts = stdout
    .split('\n')
    .map((l) => /^\S+ (\d+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
  return { tables: counts.length, rows: counts.reduce((a, b) => a + b, 0) };
}

/** SQL (stdin of adminPsqlCommand's psql) that removes the site's database (closing its connections) and role. */
export const DROP_SQL = `SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'db') \\gexec
SELECT format('DROP ROLE IF EXISTS %I', :'role') \\gexec
`;

export default definePlugin({
  name: PLUGIN_NAME,
  // Made ready before the app nodes of a split group: they connect to it.
  roles: [{ name: 'postgres', description: 'runs PostgreSQL for the sites', partOf: 'db', first: true }],
  runsOn: ['postgres'],
  init: {
    detect: ({ requirements }) => {
      const found = ['psycopg2', 'psycopg2-binary', 'psycopg', 'psycopg-binary', 'psycopg-c', 'asyncpg'].find((p) => requirements.has(p));
      return found && `${found} in requirements.txt`;
    },
    examples: () => ({ postgres: { url: 'env' } }),
  },
  description: 'PostgreSQL role and database per site, peer authentication over the local socket; on a db node of its own, TLS and a password from the app nodes only (DATABASE_URL)',
  settings: POSTGRES_SETTINGS,
  nodeStatus: (status, site) => {
    if (!isExternal(site)) status.process('postgresql', 'postgres');
  },
  // The site's name is its database and role name: these are the cluster's own.
  reservesSiteName(name) {
    if (name === 'postgres') return `"postgres" is reserved: PostgreSQL's own database and superuser`;
    if (name === 'template0' || name === 'template1') return `"${name}" is reserved: a PostgreSQL template database`;
    if (name.startsWith('pg_')) return `"${name}" starts with pg_, which PostgreSQL reserves for its own roles`;
    return undefined;
  },
  apply(hooks: Hooks, site: Site) {
    if (isExternal(site)) return applyExternal(hooks, site);
    // A group that declares roles: the database on its node, reached over the network (db-node.ts).
    applyDbNode(hooks, site, postgresNames(site), { psql: adminPsqlCommand(site), sql: PROVISION_SQL });
    // The taps below run on the database's node only (runsOn; every node when no node declares roles).
    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add('postgresql');
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

    hooks.environment.tap(PLUGIN_NAME, (ctx, env) => {
      if (ctx.topology.declared) return;
      const { database, role } = postgresNames(site);
      env.set('DATABASE_URL', databaseUrl(site));
      env.set('POSTGRES_DATABASE', database);
      env.set('POSTGRES_USER', role);
    });

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      if (ctx.topology.declared) return;
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

    hooks.verify.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'PostgreSQL database',
        run: async (ctx, task) => {
          const res = await ctx.remote.exec(verifyDatabaseCommand(site, ctx.dir), { check: false });
          if (res.code !== 0) {
            const why = failureReason(res);
            throw new KraftwerkError(`PostgreSQL: the database does not restore (${why})`);
          }
          const { tables, rows } = parseTableCounts(res.stdout);
          task.title(`PostgreSQL: restored into a scratch database, ${tables} table${tables === 1 ? '' : 's'}, ${rows} row${rows === 1 ? '' : 's'}`);
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

/** The hooks of an external database: nothing to provision; the URL is checked, kept for root's tools, and used. */
function applyExternal(hooks: Hooks, site: Site): void {
  hooks.setupNode.tap(PLUGIN_NAME, (_ctx, _tasks, packages) => {
    // pg_dump and pg_restore for dump, load and backups; no server.
    packages.add('postgresql-client');
  });

  hooks.preSync.tap(PLUGIN_NAME, (_ctx, tasks) => {
    tasks.add(userVariableCheck(site, 'DATABASE_URL', 'postgres.url is "env"'));
  });

  hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
    tasks.add({
      title: 'external database connection',
      // After core computed the environment (Stage.PREPARE - 50), before release commands migrate.
      stage: Stage.PREPARE,
      run: (ctx, task) => {
        const url = ctx.env.DATABASE_URL;
        if (!url) throw new KraftwerkError(`DATABASE_URL of ${site.name} on ${ctx.node} is empty`, { hint: `kraftwerk env set ${ctx.node} DATABASE_URL` });
        ctx.files.add(serviceFile(site, url, ctx.node));
        task.title('external database: connection kept for dump, load and backups (root only)');
      },
    });
  });

  hooks.dump.tap(PLUGIN_NAME, (_ctx, tasks) => {
    tasks.add({
      title: 'PostgreSQL database (external)',
      run: async (ctx) => {
        await ctx.remote.exec(dumpExternalCommand(site, ctx.dir));
      },
    });
  });

  hooks.load.tap(PLUGIN_NAME, (_ctx, tasks) => {
    tasks.add({
      title: 'PostgreSQL database (external)',
      run: async (ctx, task) => {
        const { stdout } = await ctx.remote.exec(loadExternalCommand(site, ctx.dir));
        task.title(stdout.includes('no database in this dump') ? 'PostgreSQL (nothing in this dump)' : 'PostgreSQL: the external database restored');
      },
    });
  });

  hooks.verify.tap(PLUGIN_NAME, (_ctx, tasks) => {
    tasks.add({
      title: 'PostgreSQL database (external)',
      run: async (ctx, task) => {
        const res = await ctx.remote.exec(verifyExternalCommand(ctx.dir), { check: false });
        if (res.code !== 0) {
          const why = failureReason(res);
          throw new KraftwerkError(`PostgreSQL: the archive does not read (${why})`);
        }
        const tables = Number(res.stdout.trim()) || 0;
        task.title(`PostgreSQL: the archive reads whole, data of ${tables} table${tables === 1 ? '' : 's'} (an external database is not restored here)`);
      },
    });
  });

  hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
    tasks.add({
      title: 'external database',
      stage: Stage.LATE,
      // The database is the user's and may outlive the site here: it is never dropped.
      run: (_ctx, task) => task.title('external database left as it is (DATABASE_URL)'),
    });
  });
}
