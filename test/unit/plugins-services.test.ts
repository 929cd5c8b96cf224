import assert from 'node:assert/strict';
import { soloTopology } from '../../core/engine/topology.ts';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { createHooks } from '../../core/engine/hooks.ts';
import { type DestroyContext, EnvironmentVars, SetupPackages } from '../../core/engine/context.ts';
import { TaskList } from '../../core/engine/tasks.ts';
import type { Plugin } from '../../core/engine/plugin.ts';
import type { Site } from '../../core/config/site.ts';
import filesPlugin, { uploadsFolderCommand } from '../../plugins/files/index.ts';
import postgresPlugin, { clusterCommand, databaseUrl, postgresNames, PROVISION_SQL, adminPsqlCommand } from '../../plugins/postgres/index.ts';
import redisPlugin, {
  aclApplyCommand,
  ACL_RULES,
  aclCommands,
  keyPrefix,
  newPassword,
  previousPassword,
  redisSetupCommand,
  redisUrl,
} from '../../plugins/redis/index.ts';
import { testSite } from '../helpers/site.ts';

async function environmentOf(plugin: Plugin, site: Site, previous: Record<string, string> = {}) {
  const hooks = createHooks();
  plugin.apply!(hooks, site);
  const env = new EnvironmentVars();
  await hooks.environment.promise({ site, node: 'n1', topology: soloTopology('n1'), previous }, env);
  return env;
}

async function packagesOf(plugin: Plugin) {
  const hooks = createHooks();
  plugin.apply!(hooks, testSite());
  const packages = new SetupPackages();
  const tasks = new TaskList('setupNode');
  await hooks.setupNode.promise({ topology: soloTopology('n') } as never, tasks as never, packages);
  return { packages: packages.names, tasks: tasks.length };
}

describe('files', () => {
  it('provides UPLOADS_PATH and SITE_ROOT', async () => {
    const env = await environmentOf(filesPlugin, testSite());
    assert.deepEqual(env.toRecord(), { UPLOADS_PATH: '/srv/shop/shared/uploads', SITE_ROOT: '/srv/shop' });
  });

  it('creates the uploads folder (site user, web group, setgid) or gives an existing one the web group', () => {
    const text = uploadsFolderCommand(testSite()).text;
    assert.ok(text.includes(`  install -d -m 2750 -o kw-shop -g kwn-shop /srv/shop/shared/uploads && echo 'kraftwerk: created'\n`), text);
    assert.ok(text.includes(`  chown -h kw-shop:kwn-shop /srv/shop/shared/uploads && chmod 2750 /srv/shop/shared/uploads\n`), text);
    // What is inside is the site's: changed by the site user itself, never by root following its links.
    assert.ok(text.includes(`  runuser -u kw-shop -- sh -c 'find /srv/shop/shared/uploads -mindepth 1 -user kw-shop ! -group kwn-shop -exec chgrp -h kwn-shop`), text);
  });
});

describe('postgres', () => {
  it('names the database after the site and the role after the site user (peer authentication)', () => {
    assert.deepEqual(postgresNames(testSite()), { database: 'shop', role: 'kw-shop' });
    assert.equal(databaseUrl(testSite({}, 'my-site')), 'postgresql:///my-site?host=/var/run/postgresql');
  });

  it('provides DATABASE_URL, POSTGRES_DATABASE and POSTGRES_USER', async () => {
    const env = await environmentOf(postgresPlugin, testSite());
    assert.deepEqual(env.toRecord(), {
      DATABASE_URL: 'postgresql:///shop?host=/var/run/postgresql',
      POSTGRES_DATABASE: 'shop',
      POSTGRES_USER: 'kw-shop',
    });
    assert.equal(env.vars.get('DATABASE_URL')!.secret, false);
  });

  it('passes names as psql variables, never inside the SQL', () => {
    assert.equal(
      adminPsqlCommand(testSite()).text,
      'cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -v role=kw-shop -v db=shop -d postgres',
    );
    assert.ok(!PROVISION_SQL.includes('shop'));
    assert.match(PROVISION_SQL, /format\('CREATE ROLE %I LOGIN', :'role'\) WHERE NOT EXISTS/);
    assert.match(PROVISION_SQL, /format\('CREATE DATABASE %I OWNER %I', :'db', :'role'\) WHERE NOT EXISTS/);
    assert.match(PROVISION_SQL, /REVOKE ALL ON DATABASE %I FROM PUBLIC/);
  });

  it('setup creates a cluster only if there is none and starts what is down', () => {
    const text = clusterCommand().text;
    assert.ok(text.includes('if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then'));
    assert.ok(text.includes(`service postgresql start >/dev/null\n  echo 'started PostgreSQL'`));
    assert.equal(spawnSync('sh', ['-n', '-c', text]).status, 0);
  });

  it('installs postgresql at setup-node', async () => {
    assert.deepEqual(await packagesOf(postgresPlugin), { packages: ['postgresql'], tasks: 1 });
  });
});

describe('redis', () => {
  it('REDIS_URL names the site user; the password is kept across deploys', async () => {
    const site = testSite();
    const first = await environmentOf(redisPlugin, site);
    const url = first.toRecord().REDIS_URL!;
    assert.match(url, /^redis:\/\/kw-shop:[0-9a-f]{48}@127\.0\.0\.1:6379\/0$/);
    assert.equal(first.vars.get('REDIS_URL')!.secret, true);
    assert.equal(first.toRecord().REDIS_KEY_PREFIX, 'shop:');
    const second = await environmentOf(redisPlugin, site, { REDIS_URL: url });
    assert.equal(second.toRecord().REDIS_URL, url);
  });

  it('ignores a previous REDIS_URL of another user', () => {
    assert.equal(previousPassword(testSite(), 'redis://someone:pw@127.0.0.1:6379/0'), undefined);
    assert.equal(previousPassword(testSite(), 'not a url'), undefined);
    assert.equal(previousPassword(testSite(), redisUrl(testSite(), 'p@ss:w/rd')), 'p@ss:w/rd');
    assert.notEqual(newPassword(), newPassword());
  });

  it('the ACL limits the user to its own keys and channels; only a hash reaches Redis', () => {
    const sha = createHash('sha256').update('pw').digest('hex');
    assert.equal(keyPrefix(testSite()), 'shop:');
    assert.equal(
      aclCommands(testSite(), sha),
      `ACL SETUSER kw-shop reset on #${sha} ~shop:* &shop:* ${ACL_RULES}\nACL SAVE\n`,
    );
  });

  it('the ACL is an allow-list without the commands that ignore key patterns or act node-wide', () => {
    const rules = ACL_RULES.split(' ');
    assert.equal(rules[0], '-@all', 'starts from nothing');
    assert.deepEqual(rules.slice(-2), ['-@admin', '-@dangerous'], 'ends with the safety net');
    assert.ok(!rules.includes('+@all') && !rules.includes('+@keyspace') && !rules.includes('+@read') && !rules.includes('+@write'));
    for (const denied of ['scan', 'keys', 'randomkey', 'dbsize', 'flushall', 'flushdb', 'swapdb', 'function', 'fcall', 'script', 'script|flush', 'pubsub', 'client', 'client|list', 'client|kill', 'client|tracking', 'object', 'debug', 'migrate', 'wait', 'info', 'config', 'monitor', '@scripting', '@pubsub', '@connection']) {
      assert.ok(!rules.includes(`+${denied}`), `+${denied} is not allowed`);
    }
    for (const allowed of ['+@string', '+@transaction', '+expire', '+eval', '+script|load', '+subscribe', '+publish', '+hello', '+select']) {
      assert.ok(rules.includes(allowed), `${allowed} is allowed`);
    }
  });

  it('applies the ACL as the admin user whose password never leaves the server (exact command)', () => {
    const cli = 'redis-cli --no-auth-warning --user kraftwerk -h 127.0.0.1 -p 6379';
    assert.equal(
      aclApplyCommand(testSite()).text,
      `set -e
export REDISCLI_AUTH="$(cat /etc/kraftwerk/redis-admin.secret)"
before=$(${cli} ACL LIST </dev/null | grep -F 'user kw-shop ' || true)
out=$(${cli})
case "$out" in *ERR*|*NOPERM*|*WRONGPASS*) printf '%s\\n' "$out" >&2; exit 1;; esac
after=$(${cli} ACL LIST </dev/null | grep -F 'user kw-shop ' || true)
if [ "$before" = "$after" ]; then echo 'kraftwerk: unchanged'; else echo 'kraftwerk: changed'; fi`,
    );
  });

  it('setup switches the default user off and keeps users in an ACL file', () => {
    const text = redisSetupCommand().text;
    assert.ok(text.includes(`printf 'user default off\\nuser kraftwerk on #%s ~* &* +@all\\n' "$hash" > /etc/redis/kraftwerk.acl`));
    assert.ok(text.includes('if ! grep -qx \'aclfile /etc/redis/kraftwerk.acl\' /etc/redis/redis.conf; then'));
    assert.equal(spawnSync('sh', ['-n', '-c', text]).status, 0);
  });

  it('installs redis-server at setup-node', async () => {
    assert.deepEqual(await packagesOf(redisPlugin), { packages: ['redis-server', 'redis-tools'], tasks: 1 });
  });
});

describe('files: dump and load (run for real in a temp folder)', () => {
  it('an archive of the uploads comes back exactly, replacing what was there', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { dumpUploadsCommand, loadUploadsCommand } = await import('../../plugins/files/index.ts');
    const root = mkdtempSync(path.join(tmpdir(), 'kw-files-'));
    try {
      const base = testSite();
      // The layout moved into the temp folder, owned by whoever runs the test.
      const user = spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim();
      const site = { ...base, user, paths: { ...base.paths, uploads: path.join(root, 'uploads') } };
      const dump = path.join(root, 'dump');
      mkdirSync(path.join(site.paths.uploads, 'sub'), { recursive: true });
      mkdirSync(dump);
      writeFileSync(path.join(site.paths.uploads, "it's a file.txt"), 'one');
      writeFileSync(path.join(site.paths.uploads, 'sub/two.bin'), Buffer.from([0, 1, 2]));
      assert.equal(spawnSync('sh', ['-c', dumpUploadsCommand(site, dump).text]).status, 0);

      writeFileSync(path.join(site.paths.uploads, 'written-after.txt'), 'later');
      const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
      const r = spawnSync('sh', ['-c', loadUploadsCommand(site, dump, group).text], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(path.join(site.paths.uploads, "it's a file.txt"), 'utf8'), 'one');
      assert.deepEqual([...readFileSync(path.join(site.paths.uploads, 'sub/two.bin'))], [0, 1, 2]);
      assert.ok(!existsSync(path.join(site.paths.uploads, 'written-after.txt')), 'the load replaces the folder');
      assert.deepEqual(readdirSync(root).sort(), ['dump', 'uploads'], 'no temporary folders left');

      const empty = path.join(root, 'empty-dump');
      mkdirSync(empty);
      const none = spawnSync('sh', ['-c', loadUploadsCommand(site, empty, group).text], { encoding: 'utf8' });
      assert.equal(none.stdout, 'kraftwerk: no uploads in this dump\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('postgres: dump, load, destroy', () => {
  it('dumps with pg_dump and restores as the site role in one transaction', async () => {
    const { dumpDatabaseCommand, loadDatabaseCommand, DROP_SQL } = await import('../../plugins/postgres/index.ts');
    assert.equal(
      dumpDatabaseCommand(testSite(), '/srv/shop/backups/X').text,
      'cd / && runuser -u postgres -- pg_dump -Fc --no-owner --dbname=shop > /srv/shop/backups/X/postgres.dump',
    );
    assert.equal(
      loadDatabaseCommand(testSite(), '/srv/shop/backups/X').text,
      `[ -f /srv/shop/backups/X/postgres.dump ] || { echo 'kraftwerk: no database in this dump'; exit 0; }
cd / && runuser -u postgres -- pg_restore --clean --if-exists --no-owner --role=kw-shop --single-transaction --exit-on-error --dbname=shop < /srv/shop/backups/X/postgres.dump`,
    );
    assert.equal(
      DROP_SQL,
      "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'db') \\gexec\nSELECT format('DROP ROLE IF EXISTS %I', :'role') \\gexec\n",
    );
  });
});

describe('redis: destroy', () => {
  it('removes the ACL user and, unless data is kept, the site keys', async () => {
    const { removeUserCommand } = await import('../../plugins/redis/index.ts');
    const cli = 'redis-cli --no-auth-warning --user kraftwerk -h 127.0.0.1 -p 6379';
    assert.equal(
      removeUserCommand(testSite(), false).text,
      `set -e
export REDISCLI_AUTH="$(cat /etc/kraftwerk/redis-admin.secret)"
${cli} ACL DELUSER kw-shop >/dev/null
${cli} ACL SAVE >/dev/null
${cli} --scan --pattern 'shop:*' | xargs -r -d '\\n' -n 100 ${cli} DEL >/dev/null`,
    );
    assert.ok(!removeUserCommand(testSite(), true).text.includes('--scan'));
  });
});

describe('nginx and runit: destroy', () => {
  it('takes the site out of nginx, then stops and removes its services (both web slots)', async () => {
    const { nginxRemoveCommand } = await import('../../plugins/nginx/index.ts');
    assert.equal(
      nginxRemoveCommand(testSite()).text,
      `rm -f /etc/nginx/sites-enabled/kraftwerk-shop.conf /etc/nginx/sites-available/kraftwerk-shop.conf /etc/nginx/sites-available/kraftwerk-shop.conf.prev
if nginx -t -q 2>/dev/null && service nginx status >/dev/null 2>&1; then service nginx reload >/dev/null; fi`,
    );
    // runit: both web slots go, each stopped, unlinked from runsvdir and its definition deleted.
    const { default: runitPlugin } = await import('../../plugins/runit/index.ts');
    const { removeServicesCommand } = await import('../../plugins/runit/commands.ts');
    const hooks = createHooks();
    runitPlugin.apply!(hooks, testSite());
    const destroy = new TaskList<DestroyContext>('destroy');
    await hooks.destroy.promise({} as DestroyContext, destroy);
    assert.equal(destroy.length, 1);
    const sent: string[] = [];
    let stdout = 'removed kraftwerk-shop@blue\nremoved kraftwerk-shop@green\n';
    const ctx = { remote: { exec: async (c: { text: string }) => (sent.push(c.text), { stdout, stderr: '' }) } } as unknown as DestroyContext;
    let title = '';
    const handle = { title: (t: string) => void (title = t), output() {}, skip() {} };
    await destroy.sorted()[0]!.run(ctx, handle);
    assert.deepEqual(sent, [removeServicesCommand(['kraftwerk-shop@blue', 'kraftwerk-shop@green'], 30).text]);
    assert.equal(title, 'removed runit services kraftwerk-shop@{blue,green}');
    const remove = sent[0]!;
    assert.ok(remove.startsWith('for s in kraftwerk-shop@blue kraftwerk-shop@green; do\n'));
    assert.ok(remove.includes('    sv -w 30 force-stop /etc/service/"$s" >/dev/null 2>&1 || true\n'));
    assert.ok(remove.includes('    rm -f /etc/service/"$s"\n'));
    assert.ok(remove.includes('pgrep -f "^runsv $s$"'));
    assert.ok(remove.includes('  rm -rf /etc/sv/"$s" ||'));
    assert.equal(spawnSync('sh', ['-n', '-c', remove]).status, 0);
    stdout = '';
    await destroy.sorted()[0]!.run(ctx, handle);
    assert.equal(title, 'runit service kraftwerk-shop (none)');
  });
});
