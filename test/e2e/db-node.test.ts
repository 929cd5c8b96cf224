/**
 * The database on its own node (issue 16): a group of a web node and a db
 * node (`roles: [web, worker]`, `roles: [db]`, both sandboxes from the set-up
 * snapshot) and the flask-hello example, which writes to PostgreSQL and
 * Redis. setup-node of the group starts on each node only what its roles
 * need; the site reaches PostgreSQL (verify-full TLS, scram-sha-256) and
 * Redis (TLS, ACL user) on the db node; the db node's ports refuse this
 * machine (an address outside the group); the passwords, made on the db node,
 * are in no output; dump and load of the group put the database back.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { type CliResult, runCli, sandboxSkip, withPreparedSandbox } from './harness.ts';
import { flaskHelloProject, get as getAnswer, onNode, printed, setupRecipe } from './safe-helpers.ts';

const WEB = 'dbn-web';
const DB = 'dbn-db';
const GROUP = 'pair';
const SITE = 'dbsite';
const DOMAIN = 'dbsite.test';

/** flask-hello in a folder named after the site, the group split by roles. */
function project(t: TestContext): string {
  return flaskHelloProject(t, SITE, DOMAIN, (doc) => {
    doc.set('nodes', { [WEB]: { host: WEB, roles: ['web', 'worker'] }, [DB]: { host: DB, roles: ['db'] }, [GROUP]: [WEB, DB] });
    doc.set('default_node', GROUP);
  });
}

/** Whether a TCP connection from this machine to address:port is accepted (false: refused, dropped or timed out). */
function connects(address: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

describe('the database on its own node (roles: [db])', { skip: sandboxSkip() }, () => {
  it('a web node and a db node', { timeout: 90 * 60_000 }, async (t) => {
    const dir = project(t);
    const outputs: { what: string; r: CliResult }[] = [];
    const cli = async (args: readonly string[]): Promise<CliResult> => {
      const r = await runCli(args, { cwd: dir, timeoutMs: 30 * 60_000 });
      outputs.push({ what: args.join(' '), r });
      assert.equal(r.code, 0, `kraftwerk ${args.join(' ')}:\n${printed(r)}`);
      return r;
    };
    const sql = (query: string) => onNode(DB, `cd / && runuser -u postgres -- psql -X -At -d ${SITE} -c ${JSON.stringify(query)}`);

    await withPreparedSandbox(t, WEB, setupRecipe(), (web) =>
      withPreparedSandbox(t, DB, setupRecipe(), async (db) => {
        await t.test('setup-node of the group starts PostgreSQL and Redis on the db node only, and no app server there', async () => {
          await cli(['setup-node', GROUP]);
          // The snapshot has every package and its services stopped: what runs is what setup-node started.
          assert.equal((await onNode(WEB, 'pgrep -x postgres >/dev/null && echo running || echo none')).trim(), 'none', 'no PostgreSQL on the web node');
          assert.equal((await onNode(WEB, 'pgrep -x redis-server >/dev/null && echo running || echo none')).trim(), 'none', 'no Redis on the web node');
          assert.equal((await onNode(DB, 'pgrep -x postgres >/dev/null && echo running || echo none')).trim(), 'running');
          const listening = await onNode(DB, 'ss -Hltn');
          assert.match(listening, new RegExp(`${db.address.replaceAll('.', '\\.')}:5432`), `PostgreSQL listens on the db node's address:\n${listening}`);
          assert.match(listening, new RegExp(`${db.address.replaceAll('.', '\\.')}:6379`), `Redis listens on the db node's address:\n${listening}`);
          assert.equal((await onNode(DB, 'stat -c "%U %G %a" /etc/kraftwerk/tls/node.key')).trim(), 'root ssl-cert 640');
        });

        await t.test('a deploy: the site uses PostgreSQL and Redis on the db node, over TLS with passwords made there', async () => {
          await cli(['--verbose', 'deploy', GROUP]);
          const page = await getAnswer(web.address, '/db', 30_000, DOMAIN);
          assert.equal(page.status, 200, page.body ?? page.error);
          assert.match(page.body ?? '', new RegExp(`visits=1 user=kw-${SITE} database=${SITE}`));
          const counter = await getAnswer(web.address, '/redis', 30_000, DOMAIN);
          assert.match(counter.body ?? counter.error ?? '', /counter=1/);
          assert.equal((await sql('SELECT count(*) FROM visits')).trim(), '1', 'the row is in the db node\'s database');
          const env = await onNode(WEB, `cat /srv/${SITE}/current/.kraftwerk/env`);
          assert.match(env, new RegExp(`DATABASE_URL=.*@${db.address.replaceAll('.', '\\.')}:5432/${SITE}\\?sslmode=verify-full`));
          assert.match(env, new RegExp(`REDIS_URL=.*rediss://kw-${SITE}:.*@${db.address.replaceAll('.', '\\.')}:6379/`));
          assert.equal((await onNode(WEB, 'pgrep -x postgres >/dev/null && echo running || echo none')).trim(), 'none');
          assert.equal((await onNode(DB, "pgrep -x uwsgi >/dev/null && echo running || echo none")).trim(), 'none', 'no uWSGI on the db node');
          assert.equal((await onNode(DB, `stat -c '%U %a' /etc/kraftwerk/postgres/passwords/${SITE} /etc/kraftwerk/redis/passwords/${SITE}`)).trim(), 'root 600\nroot 600');
          assert.equal((await onNode(WEB, `stat -c '%U %a' /etc/kraftwerk/db-ca/${SITE}-postgres.crt`)).trim(), 'root 644');
        });

        await t.test("the db node's ports refuse this machine (outside the group)", async () => {
          for (const port of [5432, 6379]) assert.equal(await connects(db.address, port), false, `port ${port} of the db node answers this machine`);
          // Without TLS the web node's own address is refused by pg_hba too.
          const plain = await onNode(
            WEB,
            `python3 -c "import psycopg2; psycopg2.connect('postgresql://kw-${SITE}:x@${db.address}:5432/${SITE}?sslmode=disable&connect_timeout=5')" 2>&1 || true`,
          );
          assert.match(plain, new RegExp(`no pg_hba\\.conf entry for host "${web.address.replaceAll('.', '\\.')}", user "kw-${SITE}", database "${SITE}", no encryption`), plain);
        });

        await t.test('the firewall comes back at boot: /etc/nftables.conf loads the rule set as last applied', async () => {
          // What Debian's nftables service does at boot, with every rule gone first.
          const table = await onNode(DB, 'nft flush ruleset && nft -f /etc/nftables.conf && nft list table inet kraftwerk_private');
          assert.match(table, /tcp dport 5432 drop/, table);
          assert.match(table, new RegExp(`ip saddr ${web.address.replaceAll('.', '\\.')} tcp dport 5432 accept`), table);
          for (const port of [5432, 6379]) assert.equal(await connects(db.address, port), false, `port ${port} answers this machine after the reload`);
        });

        await t.test('dump and load of the group put the database back', async () => {
          const dump = await cli(['dump', GROUP]);
          const id = /Dump (\d{8}T\d{6}Z)/.exec(dump.stdout)?.[1];
          assert.ok(id, dump.stdout);
          assert.equal((await onNode(DB, `test -s /srv/${SITE}/backups/${id}/postgres.dump && echo yes || echo no`)).trim(), 'yes', 'the database is dumped on the db node');
          await getAnswer(web.address, '/db', 30_000, DOMAIN);
          assert.equal((await sql('SELECT count(*) FROM visits')).trim(), '2');
          await cli(['load', GROUP, id!, '--yes', '--no-backup']);
          assert.equal((await sql('SELECT count(*) FROM visits')).trim(), '1', 'the dump of one visit came back');
          assert.equal((await sql("SELECT tableowner FROM pg_tables WHERE tablename = 'visits'")).trim(), `kw-${SITE}`);
          const page = await getAnswer(web.address, '/db', 30_000, DOMAIN);
          assert.match(page.body ?? page.error ?? '', /visits=2/, 'the site works on after the load');
        });

        await t.test('no output showed a password', async () => {
          const passwords = [
            (await onNode(DB, `cat /etc/kraftwerk/postgres/passwords/${SITE}`)).trim(),
            (await onNode(DB, `cat /etc/kraftwerk/redis/passwords/${SITE}`)).trim(),
          ];
          for (const p of passwords) assert.ok(p.length >= 32, 'the db node has the passwords');
          for (const { what, r } of outputs) for (const p of passwords) assert.ok(!`${r.stdout}${r.stderr}`.includes(p), `kraftwerk ${what} printed a password:\n${printed(r)}`);
          const ps = await onNode(WEB, 'ps -eo args');
          for (const p of passwords) assert.ok(!ps.includes(p), 'no process of the web node has a password in its command line');
        });
      }),
    );
  });
});
