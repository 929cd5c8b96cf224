/**
 * A site that outgrew one server (issue 16): a load balancer and two web nodes, sandboxes from
 * the set-up snapshot. What a user of the site notices:
 *   - setup-node of the group, then a deploy: requests through the lb reach both web nodes, the
 *     app sees the client's own address (X-Forwarded-For, trusted from the lb only), the lb runs
 *     no app;
 *   - a web node whose nginx is stopped: the lb keeps serving from the other;
 *   - a rolling deploy under a bounded request loop through the lb: not one request fails;
 *   - a release that fails its health check on the first web node stops the roll there: the
 *     other web node never switches and keeps serving the old release, also during the deploy;
 *   - with `tls:` (a real ACME server, pebble): certbot runs on the lb, HTTPS ends there, the web
 *     nodes stay on plain HTTP (their health checks too).
 *   - the database on a node of its own: both web nodes use the one PostgreSQL and the one Redis
 *     there; its ports refuse the lb (and this machine, outside the group); PostgreSQL runs on no
 *     other node; the cron job is on one node only.
 * The fixture app answers /host with its node's hostname and /addr with REMOTE_ADDR (app.py).
 * (dump and load with the database on its node: db-node.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quote } from '../../core/shell/sh.ts';
import { request as httpsRequest } from 'node:https';
import { pebbleUnavailable, startPebble } from '../helpers/pebble.ts';
import { sandboxSkip } from './harness.ts';
import {
  type Answer,
  assertOnlyServed,
  deployOk,
  describeAnswer,
  get,
  liveRelease,
  onNode,
  pageOf,
  poll,
  printed,
  releasesOn,
  SafeProject,
  DOMAIN,
  UNHEALTHY_FLAG,
  withSetUpNodes,
} from './safe-helpers.ts';

const LB = 'topo-lb';
const WEB1 = 'topo-web1';
const WEB2 = 'topo-web2';
const DB = 'topo-db';
const GROUP = 'production';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GET https://<domain>/ from `address` (SNI and Host the site's), verified against `ca`. */
function httpsPage(address: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: address, port: 443, path: '/', headers: { host: DOMAIN }, servername: DOMAIN, ca, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('a load balancer in front of two web nodes', { skip: sandboxSkip() }, () => {
  it('serves from both, survives a stopped node, rolls a deploy without a failed request, stops a bad roll', { timeout: 60 * 60_000 }, async (t) => {
    const project = SafeProject.create(t)
      .setVersion('A', { ownVenv: false })
      .editConfig((doc) => {
        doc.set('nodes', {
          lb: { host: LB, roles: ['lb'] },
          web1: { host: WEB1, roles: ['web'] },
          web2: { host: WEB2, roles: ['web'] },
          db: { host: DB, roles: ['db'] },
          [GROUP]: ['lb', 'web1', 'web2', 'db'],
        });
        doc.set('services', ['postgres', 'redis']);
        // The app's code reaches them with Debian's drivers (the venv sees the system's packages).
        doc.set('apt', ['python3-psycopg2', 'python3-redis']);
        doc.set('cron', [{ name: 'tick', schedule: '*/10 * * * *', command: 'true' }]);
      });
    /** A line of Python run as the site on `node` (`kraftwerk run`), with the site's environment. */
    const py = async (node: string, code: string) => {
      const r = await project.cli(['run', node, '--', 'python3', '-c', code]);
      assert.equal(r.code, 0, printed(r));
      return r.stdout.trim();
    };
    // withSetUpNodes runs setup-node per sandbox name; the group's own setup-node is the first subtest.
    await withSetUpNodes(t, project, [LB, WEB1, WEB2, DB], async ([lb, web1, web2, db]) => {
      const through = (urlPath = '/') => get(lb!.address, urlPath);
      const page = async (address: string) => {
        const a = await get(address);
        assert.equal(a.status, 200, `GET / at ${address}: ${describeAnswer(a)}`);
        return a.body!;
      };

      await t.test('setup-node of the group', async () => {
        const r = await project.cli(['setup-node', GROUP], { timeoutMs: 30 * 60_000 });
        assert.equal(r.code, 0, printed(r));
        // withSetUpNodes set each sandbox up alone (every role): restart them as after a boot, so what runs is what the roles start.
        for (const n of [LB, WEB1, WEB2, DB]) await onNode(n, 'service postgresql stop >/dev/null 2>&1; service redis-server stop >/dev/null 2>&1; true');
        const again = await project.cli(['setup-node', GROUP], { timeoutMs: 30 * 60_000 });
        assert.equal(again.code, 0, printed(again));
        const running = async (n: string, program: string) => (await onNode(n, `pgrep -x ${program} >/dev/null && echo yes || echo no`)).trim();
        for (const n of [LB, WEB1, WEB2]) assert.equal(await running(n, 'postgres'), 'no', `no PostgreSQL on ${n}`);
        assert.equal(await running(DB, 'postgres'), 'yes', 'PostgreSQL on the db node');
      });

      let good: string | undefined;
      await t.test('requests through the lb reach both web nodes, with the client address passed on', async () => {
        good = await deployOk(project.setVersion('A', { ownVenv: false }), GROUP);
        const hosts = new Set<string>();
        for (let i = 0; i < 20; i++) {
          const a = await through('/host');
          assert.equal(a.status, 200, describeAnswer(a));
          hosts.add(a.body!.trim());
        }
        assert.deepEqual([...hosts].sort(), [WEB1, WEB2].sort(), 'the upstream spreads requests over both web nodes');
        const addr = await through('/addr');
        // This machine reaches the lb from the host end of its veth: that is the client, not the lb.
        assert.equal(addr.body?.trim(), lb!.record.hostAddress, `the app sees the client's address: ${describeAnswer(addr)}`);
        assert.equal(await page(lb!.address), pageOf('A'));
        const app = await onNode(LB, 'ls /etc/service; pgrep -x uwsgi || true');
        assert.doesNotMatch(app, /kraftwerk-safesite|^\d+$/m, `the lb runs no app:\n${app}`);
      });

      await t.test('both web nodes use the one database and the one Redis on the db node; its ports refuse the lb', async () => {
        const insert = `import os, psycopg2; c = psycopg2.connect(os.environ['DATABASE_URL']); c.autocommit = True; k = c.cursor(); k.execute("CREATE TABLE IF NOT EXISTS notes (host text)"); k.execute("INSERT INTO notes VALUES (%s)", (open('/proc/sys/kernel/hostname').read().strip(),))`;
        await py('web1', insert);
        await py('web2', insert);
        const hosts = await py('web2', `import os, psycopg2; k = psycopg2.connect(os.environ['DATABASE_URL']).cursor(); k.execute("SELECT host FROM notes ORDER BY host"); print(' '.join(r[0] for r in k.fetchall()))`);
        assert.equal(hosts, [WEB1, WEB2].sort().join(' '), 'each web node sees the rows of both');
        const incr = `import os, redis; print(redis.from_url(os.environ['REDIS_URL']).incr('safesite:hits'))`;
        assert.equal(await py('web1', incr), '1');
        assert.equal(await py('web2', incr), '2', 'web2 counts on from web1: one Redis');
        // From the lb (in the group, but not an app node) and from this machine (outside it): nothing answers.
        const knock = (port: number) => `timeout 3 bash -c 'exec 3<>/dev/tcp/${db!.address}/${port}' 2>/dev/null && echo open || echo closed`;
        assert.equal((await onNode(LB, `${knock(5432)}; ${knock(6379)}`)).trim(), 'closed\nclosed', 'the db ports refuse the lb');
        const env = await onNode(WEB1, 'cat /srv/safesite/current/.kraftwerk/env');
        assert.match(env, new RegExp(`DATABASE_URL=.*@${db!.address.replaceAll('.', '\\.')}:5432/`), 'web1 reaches the db node');
      });

      await t.test('the cron job is on one node only', async () => {
        const has = async (n: string) => (await onNode(n, '[ -f /etc/cron.d/kraftwerk-safesite ] && echo yes || echo no')).trim();
        assert.deepEqual([await has(LB), await has(WEB1), await has(WEB2), await has(DB)], ['no', 'yes', 'no', 'no']);
      });

      await t.test('a web node whose nginx stopped: the lb keeps serving', async () => {
        await onNode(WEB2, 'service nginx stop >/dev/null');
        try {
          const answers: Answer[] = [];
          for (let i = 0; i < 20; i++) answers.push(await through('/host'));
          assertOnlyServed(answers, [`${WEB1}\n`], 'with web2 stopped', 20);
        } finally {
          await onNode(WEB2, 'service nginx start >/dev/null');
        }
      });

      await t.test('a rolling deploy under a request loop through the lb: no request fails', async () => {
        const loop = poll(lb!.address, { intervalMs: 50 });
        const r = await project.setVersion('B', { ownVenv: false }).cli(['deploy', GROUP]);
        await sleep(1000);
        const answers = await loop.stop();
        assert.equal(r.code, 0, printed(r));
        const out = `${r.stdout}\n${r.stderr}`;
        assert.match(out, /web1 out of the traffic[^]*web1 back in the traffic[^]*web2 out of the traffic[^]*web2 back in the traffic/, `one node at a time:\n${printed(r)}`);
        assertOnlyServed(answers, [pageOf('A'), pageOf('B')], 'during the rolling deploy of B', 20);
        const served = (p: string) => answers.filter((a) => a.body === p).length;
        t.diagnostic(`rolling deploy: ${answers.length} requests through the lb, 0 failed (${served(pageOf('A'))} A, ${served(pageOf('B'))} B)`);
        for (const w of [web1!, web2!]) assert.equal(await page(w.address), pageOf('B'), `${w.name} serves B`);
        good = (await releasesOn(project, 'web1')).find((x) => x.status === 'live')?.id;
      });

      await t.test('a release failing its health check on web1 stops the roll: web2 keeps the old release throughout', async () => {
        assert.ok(good, 'B is live');
        const before = liveRelease(await releasesOn(project, 'web2'));
        await onNode(WEB1, `echo H > ${quote(UNHEALTHY_FLAG)} && chmod 644 ${quote(UNHEALTHY_FLAG)}`);
        try {
          const loop = poll(lb!.address, { intervalMs: 50 });
          const r = await project.setVersion('H', { ownVenv: false }).cli(['deploy', GROUP]);
          await sleep(1000);
          const answers = await loop.stop();
          assert.equal(r.code, 1, printed(r));
          assert.match(`${r.stdout}\n${r.stderr}`, /failed on web1\b[^]*health check failed/, printed(r));
          assert.match(`${r.stdout}\n${r.stderr}`, /The roll stopped: web2 kept the previous release/, printed(r));
          // web1 was drained before it switched: H never answered a request through the lb.
          assertOnlyServed(answers, [pageOf('B')], 'through the lb during the failed roll of H', 20);
          t.diagnostic(`failed roll: ${answers.length} requests through the lb, all B`);
          assert.equal(await page(web2!.address), pageOf('B'), 'web2 serves B');
          assert.equal(await page(web1!.address), pageOf('B'), 'web1 is back on B');
          assert.equal(liveRelease(await releasesOn(project, 'web2')), before, 'web2 never switched');
          const hosts = new Set<string>();
          for (let i = 0; i < 10; i++) hosts.add((await through('/host')).body!.trim());
          assert.deepEqual([...hosts].sort(), [WEB1, WEB2].sort(), 'web1 takes requests again after its roll back');
        } finally {
          await onNode(WEB1, `rm -f ${quote(UNHEALTHY_FLAG)}`);
        }
      });

      await t.test('with tls: certbot gets the certificate on the lb, HTTPS ends there, the web nodes stay plain HTTP', { skip: pebbleUnavailable() }, async () => {
        const pebble = await startPebble({ listenAddress: lb!.record.hostAddress, siteAddress: lb!.address, httpPort: 80 });
        try {
          project.editConfig((doc) => doc.set('tls', { acme_server: pebble.directoryUrl, email: 'ops@example.com' }));
          const setup = await project.cli(['setup-node', GROUP], { timeoutMs: 30 * 60_000 });
          assert.equal(setup.code, 0, printed(setup));
          assert.match(await onNode(LB, 'command -v certbot || true'), /certbot/, 'certbot is installed on the lb');
          assert.doesNotMatch(await onNode(WEB1, 'command -v certbot || true'), /certbot/, 'and not on a web node');
          // The lb trusts the test CA of pebble's API, as a server trusts a company's private ACME CA.
          await onNode(LB, `printf '%s' ${quote(pebble.apiCaPem)} > /usr/local/share/ca-certificates/kraftwerk-test-acme.crt && update-ca-certificates >/dev/null`);
          const r = await project.cli(['deploy', GROUP]);
          assert.equal(r.code, 0, `${printed(r)}\n${pebble.log().slice(-2000)}`);
          const secure = await httpsPage(lb!.address, await pebble.issuingRoot());
          assert.equal(secure.status, 200);
          assert.equal(secure.body, pageOf('H'), 'the site over HTTPS through the lb (H: the project\'s version since the failed roll, now healthy)');
          const plain = await get(lb!.address);
          assert.equal(plain.status, 301, `plain HTTP on the lb redirects: ${describeAnswer(plain)}`);
          for (const w of [web1!, web2!]) {
            assert.equal(await page(w.address), pageOf('H'), `${w.name} answers plain HTTP on its private address`);
            assert.doesNotMatch(await onNode(w.name, 'ls /etc/letsencrypt/live 2>/dev/null || true'), /safesite|safe-site/, `no certificate on ${w.name}`);
          }
        } finally {
          await pebble.stop();
        }
      });
    });
  });
});
