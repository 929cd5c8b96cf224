/**
 * External services (issue 16): `postgres: {url: env}` and `redis: {url: env}`
 * make the site use a database and a Redis it does not get from the node (RDS,
 * ElastiCache), whose URLs the user sets with `kraftwerk env set`. Here the
 * "managed" services are a role with a password on the sandbox's PostgreSQL,
 * reached over TCP, and an ACL user on its Redis: what a provider hands out.
 * A deploy without the URL stops before anything changes; with it, the site
 * talks to them, nothing is provisioned for it, no output shows the password,
 * and dump, load and backup verify go through the URL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { describe, it, type TestContext } from 'node:test';
import { type CliResult, runCli, sandboxSkip, withPreparedSandbox } from './harness.ts';
import { flaskHelloProject, get as getAnswer, onNode, printed, setupRecipe } from './safe-helpers.ts';

const NODE = 'ext-a';
const SITE = 'extsite';
const DOMAIN = 'extsite.test';
const PASSWORD = `pw${randomBytes(8).toString('hex')}`;
const REDIS_PASSWORD = `rp${randomBytes(8).toString('hex')}`;
const DATABASE_URL = `postgresql://extuser:${PASSWORD}@127.0.0.1:5432/extdb?sslmode=disable`;
const REDIS_URL = `redis://extredis:${REDIS_PASSWORD}@127.0.0.1:6379/0`;
const adminRedis = `REDISCLI_AUTH="$(cat /etc/kraftwerk/redis-admin.secret)" redis-cli --no-auth-warning --user kraftwerk`;

/** flask-hello in a folder named after the site, its services external. */
function project(t: TestContext): string {
  return flaskHelloProject(t, SITE, DOMAIN, (doc) => {
    doc.set('postgres', { url: 'env' });
    doc.set('redis', { url: 'env' });
    // The app keeps its counter under this prefix; an external Redis gets none from Kraftwerk.
    doc.setIn(['environ', 'REDIS_KEY_PREFIX'], 'ext:');
  });
}

function cli(args: readonly string[], cwd: string, input?: string): Promise<CliResult> {
  return runCli(args, { cwd, timeoutMs: 20 * 60_000, input });
}

async function cliOk(args: readonly string[], cwd: string, input?: string): Promise<CliResult> {
  const r = await cli(args, cwd, input);
  assert.equal(r.code, 0, `kraftwerk ${args.join(' ')}:\n${printed(r)}`);
  assertNoPassword(r, args.join(' '));
  return r;
}

function assertNoPassword(r: CliResult, what: string): void {
  for (const p of [PASSWORD, REDIS_PASSWORD]) assert.ok(!`${r.stdout}${r.stderr}`.includes(p), `${what} printed a password:\n${printed(r)}`);
}

/** GET `urlPath` of the site on the node; the body, or why there is none. */
async function get(address: string, urlPath: string): Promise<{ status?: number; body: string }> {
  const a = await getAnswer(address, urlPath, 30_000, DOMAIN);
  return { status: a.status, body: a.body ?? `error: ${a.error}` };
}

const extSql = (query: string) => `cd / && runuser -u postgres -- psql -X -At -d extdb -c ${JSON.stringify(query)}`;

describe('external PostgreSQL and Redis (postgres: {url: env}, redis: {url: env})', { skip: sandboxSkip() }, () => {
  it('a site on services it does not get from the node', { timeout: 60 * 60_000 }, async (t) => {
    const dir = project(t);
    await withPreparedSandbox(t, NODE, setupRecipe(), async (sandbox) => {
      // A node restored from the snapshot has its services stopped; setup-node outside a project starts the whole stack.
      const setup = await runCli(['setup-node', NODE], { cwd: tmpdir(), timeoutMs: 20 * 60_000 });
      assert.equal(setup.code, 0, printed(setup));
      // The provider's side: a role with a password and its database, reached over TCP; a Redis ACL user.
      await onNode(
        NODE,
        `cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -c "CREATE ROLE extuser LOGIN PASSWORD '${PASSWORD}'" -c "CREATE DATABASE extdb OWNER extuser"`,
      );
      await onNode(NODE, `${adminRedis} ACL SETUSER extredis on '>${REDIS_PASSWORD}' '~ext:*' '+@all' >/dev/null`);

      await t.test('without DATABASE_URL the deploy stops before anything changes, naming the key and the fix', async () => {
        const r = await cli(['deploy', NODE], dir);
        assert.equal(r.code, 1, printed(r));
        assert.match(r.stderr, /postgres\.url is "env" in kraftwerk\.yaml, but DATABASE_URL is not set for extsite on ext-a/);
        assert.match(r.stderr, /kraftwerk env set ext-a DATABASE_URL/);
        assert.equal((await onNode(NODE, `test -e /srv/${SITE} && echo made || echo none`)).trim(), 'none');
      });

      await t.test('with the URLs set (from stdin), the site uses them; nothing is provisioned; no output shows a password', async () => {
        await cliOk(['env', 'set', NODE, 'DATABASE_URL'], dir, `${DATABASE_URL}\n`);
        await cliOk(['env', 'set', NODE, 'REDIS_URL'], dir, `${REDIS_URL}\n`);
        await cliOk(['--verbose', 'deploy', NODE], dir);
        const db = await get(sandbox.address, '/db');
        assert.equal(db.status, 200, db.body);
        assert.match(db.body, /visits=1 user=extuser database=extdb/);
        const counter = await get(sandbox.address, '/redis');
        assert.match(counter.body, /counter=1/);
        assert.equal((await onNode(NODE, `${adminRedis} GET ext:counter`)).trim(), '1');
        const roles = await onNode(NODE, `cd / && runuser -u postgres -- psql -X -At -c "SELECT count(*) FROM pg_roles WHERE rolname = 'kw-${SITE}'" -c "SELECT count(*) FROM pg_database WHERE datname = '${SITE}'"`);
        assert.equal(roles.trim(), '0\n0', 'no role and no database were made for the site');
        assert.equal((await onNode(NODE, `${adminRedis} ACL LIST | grep -c 'user kw-${SITE} ' || true`)).trim(), '0', 'no Redis user was made');
        assert.equal((await onNode(NODE, `stat -c '%U %a' /srv/${SITE}/.kraftwerk/postgres-service.conf`)).trim(), 'root 600');
      });

      await t.test('dump and load go through the URL', async () => {
        const dump = await cliOk(['dump', NODE], dir);
        const id = /Dump (\d{8}T\d{6}Z)/.exec(dump.stdout)?.[1];
        assert.ok(id, dump.stdout);
        await get(sandbox.address, '/db');
        assert.equal((await onNode(NODE, extSql('SELECT count(*) FROM visits'))).trim(), '2');
        await cliOk(['load', NODE, id!, '--yes', '--no-backup'], dir);
        assert.equal((await onNode(NODE, extSql('SELECT count(*) FROM visits'))).trim(), '1', 'the dump of one visit came back');
        assert.equal((await onNode(NODE, extSql("SELECT tableowner FROM pg_tables WHERE tablename = 'visits'"))).trim(), 'extuser');
      });

      await t.test('backup verify reads the whole archive of an external database', async () => {
        await cliOk(['backup', NODE], dir);
        const verified = await cliOk(['backup', 'verify', NODE], dir);
        assert.match(`${verified.stdout}${verified.stderr}`, /archive reads whole, data of 1 table/);
      });

      await t.test('destroy leaves the external database and its data alone', async () => {
        await cliOk(['destroy', NODE, '--yes'], dir);
        assert.equal((await onNode(NODE, extSql('SELECT count(*) FROM visits'))).trim(), '1');
        assert.equal((await onNode(NODE, `test -e /srv/${SITE} && echo left || echo gone`)).trim(), 'gone');
      });
    });
  });
});
