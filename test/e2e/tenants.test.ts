/**
 * Two tenants on one node (issue 12): a victim site with a secret, uploads,
 * PostgreSQL, Redis, a worker, a cron job and a backup, and an attacker site
 * whose own code — `kraftwerk run`, its release command, its cron jobs and its
 * worker process (payloads in test/fixtures/tenants/attacker/attacks/) — tries
 * to reach the victim and root. Every attempt is its own test case and must
 * get nothing; a few controls show that the same payload does work on the
 * attacker's own things, so a refusal is the node's doing, not a broken test.
 * The model these cases prove is docs/security.md.
 *
 * One sandbox from the set-up snapshot, both sites deployed once; attacks
 * that need a cron tick are armed first and checked at the end.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseDocument } from 'yaml';
import { quote, raw } from '../../core/shell/sh.ts';
import type { Remote } from '../../core/remote/remote.ts';
import { connectSsh } from '../../core/remote/ssh.ts';
import { sandboxTarget } from '../../tools/sandbox/lib.ts';
import { REPO_ROOT, runCli, sandboxSkip, withPreparedSandbox, type CliResult } from './harness.ts';
import { printed, setupRecipe } from './safe-helpers.ts';

// KRAFTWERK_E2E_TENANTS_NODE: another name, so that two checkouts can run this suite at once.
const NODE = process.env.KRAFTWERK_E2E_TENANTS_NODE ?? 'ten-node';
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'tenants');
const V = '/srv/victim';

/** What the attacker must never see, wherever it looks. */
const SECRET = {
  env: 'victim-env-secret-Zq81', // kraftwerk env set
  environ: 'victim-environ-marker-Kp2', // environ: in its kraftwerk.yaml
  db: 'victim-db-secret-Wx5', // a row in its database
  redis: 'victim-redis-secret-Jh3', // the value of victim:secret
  upload: 'victim-upload-secret-Qa7', // uploads/private.txt
  code: 'VICTIM-CODE-MARKER-Lm4', // in its app.py
  log: 'VICTIM-LOG-MARKER-Tb9', // its worker writes it to its log
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function copyProject(t: TestContext, name: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `kw-ten-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(path.join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

function httpGet(address: string, host: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port: 80, path: urlPath, headers: { host }, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} (Host: ${host}) timed out`)));
    req.on('error', reject);
    req.end();
  });
}

describe('two tenants on one node: the attacker site reaches nothing of the victim site or root', { skip: sandboxSkip() }, () => {
  it('every attempt of the attacker fails', { timeout: 60 * 60_000 }, async (t) => {
    const victimDir = copyProject(t, 'victim');
    const attackerDir = copyProject(t, 'attacker');
    const cli = (args: string[], cwd: string, timeoutMs = 20 * 60_000) => runCli(args, { cwd, timeoutMs });
    const ok = async (args: string[], cwd: string): Promise<CliResult> => {
      const r = await cli(args, cwd);
      assert.equal(r.code, 0, `kraftwerk ${args.join(' ')} (in ${path.basename(cwd)}):\n${printed(r)}`);
      return r;
    };

    await withPreparedSandbox(t, NODE, setupRecipe(), async (sandbox) => {
      const address = sandbox.address;
      // setup-node in the project: starts the services (as after a boot) and installs Flask & co. from Debian.
      await ok(['setup-node', NODE], victimDir);
      const target = await sandboxTarget(NODE);
      assert.ok(target, `sandbox ${NODE} is up`);
      const remote: Remote = await connectSsh(target, { acceptNewHostKey: false });
      t.after(() => remote.close());
      /** A script run as root on the node (the test's own eyes and hands, not the attacker's). */
      const root = async (script: string, stdin?: string): Promise<string> => {
        const r = await remote.exec(raw(script), { check: false, stdin });
        assert.equal(r.code, 0, `as root on ${NODE}: ${script}\n${r.stdout}${r.stderr}`);
        return r.stdout;
      };
      const adminRedis = (args: string, stdin?: string) =>
        root(`REDISCLI_AUTH="$(cat /etc/kraftwerk/redis-admin.secret)" redis-cli --no-auth-warning --user kraftwerk ${args}`, stdin);

      // ------------------------------------------------------------ the victim
      await ok(['deploy', NODE], victimDir);
      // Its data, written through stdin (a value on a command line would be the test's own leak).
      await root(`cd / && runuser -u kw-victim -- psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -d victim`, `CREATE TABLE secrets (body text); INSERT INTO secrets VALUES ('${SECRET.db}');\n`);
      await root(`install -m 0640 -o kw-victim -g kw-victim /dev/stdin ${V}/shared/uploads/private.txt`, `${SECRET.upload}\n`);
      await adminRedis('', `SET victim:secret ${SECRET.redis}\n`);
      const VICTIM_LIBRARY = "#!lua name=victimlib\nredis.register_function('victim_hello', function() return 'hello' end)\n";
      const loadVictimLibrary = () => adminRedis('-x FUNCTION LOAD REPLACE', VICTIM_LIBRARY);
      await loadVictimLibrary();

      // ------------------------------------------------------------ the attacker (its worker watches every process from now on)
      const attackerDeploy = await ok(['deploy', NODE], attackerDir);
      t.diagnostic(`attacker deployed: ${attackerDeploy.stdout.split('\n').filter((l) => /Deployed/.test(l)).join(' ')}`);

      // The victim's secret and backup, made while the attacker's spy watches.
      const envSet = await ok(['env', 'set', NODE, `VICTIM_SECRET=${SECRET.env}`], victimDir);
      assert.doesNotMatch(envSet.stdout + envSet.stderr, new RegExp(SECRET.env));
      const backup = await ok(['backup', NODE], victimDir);
      const backupId = /Backup (\d{8}T\d{6}Z)/.exec(backup.stdout)?.[1];
      assert.ok(backupId, `kraftwerk backup names its id:\n${printed(backup)}`);
      assert.equal((await httpGet(address, 'victim.test', '/')).body, 'victim site\n');

      const victimRelease = (await root(`basename "$(readlink -f ${V}/current)"`)).trim();
      const victimEnv = await root(`cat ${V}/current/.kraftwerk/env`);
      assert.match(victimEnv, new RegExp(SECRET.env), 'the secret reached the victim');
      const redisPassword = /redis:\/\/[^:]+:([^@]+)@/.exec(victimEnv)?.[1];
      assert.ok(redisPassword, `the victim's REDIS_URL has a password:\n${victimEnv.replace(/=.*/g, '=…')}`);
      const leaks = [...Object.values(SECRET), redisPassword];
      /** Fails when `text` holds anything of the victim's. */
      const assertNoLeak = (text: string, what: string) => {
        const found = leaks.filter((s) => text.includes(s));
        assert.deepEqual(found, [], `${what} leaked ${found.join(', ')}:\n${text.slice(0, 3000)}`);
      };
      // The victim's processes: uWSGI (master and worker) and its worker process.
      const victimPids = (await root('pgrep -u kw-victim -d " " .')).trim().split(' ');
      assert.ok(victimPids.length >= 3, `the victim runs uWSGI and its worker: ${victimPids.join(' ')}`);

      /** The attacker's own code: `kraftwerk run <node> -- sh attacks/try.sh <attack> <args…>`. */
      const attack = async (name: string, ...args: string[]): Promise<CliResult> => {
        const r = await cli(['run', NODE, '--', 'sh', 'attacks/try.sh', name, ...args], attackerDir, 120_000);
        assert.notEqual(r.code, 64, `try.sh knows attack ${name}`);
        return r;
      };
      /** An attempt that must be refused and leak nothing. */
      const refused = async (name: string, ...args: string[]): Promise<void> => {
        const r = await attack(name, ...args);
        assertNoLeak(r.stdout + r.stderr, `${name} ${args.join(' ')}`);
        assert.notEqual(r.code, 0, `${name} ${args.join(' ')} went through:\n${printed(r)}`);
      };

      // ------------------------------------------------------------ armed now, checked after a cron tick
      // Root-owned folders the attacker's symlinks point at; their owner must not change.
      const TARGETS = { cron: '/var/lib/ten-target-cron', worker: '/var/lib/ten-target-worker' };
      const SVLOGD_FILE = '/etc/kw-attacker-svlogd-file';
      await root(`install -d -m 0755 -o root -g root ${TARGETS.cron} ${TARGETS.worker}`);
      const armed = Date.now() / 1000;
      const arm = await attack('arm-cron', TARGETS.cron);
      t.diagnostic(`arm-cron: exit ${arm.code}\n${arm.stdout}${arm.stderr}`);

      // ------------------------------------------------------------ controls: the payloads work on the attacker's own things
      await t.test('control: the attacker reads its own environment', async () => {
        const r = await attack('read', '.kraftwerk/env');
        assert.equal(r.code, 0, printed(r));
        assert.match(r.stdout, /REDIS_URL=/);
      });
      await t.test('control: the attacker uses its own database and Redis keys', async () => {
        assert.equal((await attack('psql-own')).stdout.trim(), 'kw-attacker');
        assert.match((await attack('redis', 'SET', 'attacker:mine', 'yes')).stdout, /OK/);
        assert.equal((await attack('redis', 'GET', 'attacker:mine')).stdout.trim(), 'yes');
      });

      // ------------------------------------------------------------ files
      await t.test("reading the victim's live env file (current/.kraftwerk/env)", () => refused('read', `${V}/current/.kraftwerk/env`));
      await t.test("reading the victim's env file by release id (releases/<id>/.kraftwerk/env)", () =>
        refused('read', `${V}/releases/${victimRelease}/.kraftwerk/env`, `${V}/releases/${victimRelease}/.kraftwerk/uwsgi.ini`));
      await t.test("reading the victim's envdir (.kraftwerk/environ/)", () => refused('environ-dir'));
      await t.test("reading the victim's shared/env.local", () => refused('read', `${V}/shared/env.local`));
      await t.test("reading the victim's code", () => refused('read', `${V}/current/app.py`, `${V}/releases/${victimRelease}/app.py`));
      await t.test("listing the victim's folders", () => refused('list', V, `${V}/releases`, `${V}/shared/uploads`, `${V}/backups`));
      await t.test("reading the victim's uploads", () => refused('read', `${V}/shared/uploads/private.txt`));
      await t.test("reading the victim's logs (svlogd, nginx)", () =>
        refused(
          'read',
          '/var/log/kraftwerk/victim/worker/current',
          '/var/log/kraftwerk/victim/web@blue/current',
          '/var/log/kraftwerk/victim/cron-tick/current',
          '/var/log/nginx/kraftwerk-victim.access.log',
          '/var/log/nginx/kraftwerk-victim.error.log',
        ));
      await t.test("reading the victim's backups", () =>
        refused('read', `${V}/backups/${backupId}/postgres.dump`, `${V}/backups/${backupId}/uploads.tar.gz`, `${V}/backups/${backupId}/manifest.json`));
      await t.test("writing into the victim's uploads", async () => {
        await refused('write', `${V}/shared/uploads/attacker.txt`, `${V}/shared/uploads/private.txt`);
        assert.equal((await root(`cat ${V}/shared/uploads/private.txt; ls ${V}/shared/uploads`)).includes('attacker'), false);
      });

      // ------------------------------------------------------------ processes
      await t.test("reading /proc/<pid>/environ of the victim's uWSGI and worker", () => refused('proc-environ', ...victimPids));
      await t.test("signalling the victim's processes (kill -0)", () => refused('signal', ...victimPids));
      await t.test("stopping the victim's services through runit", async () => {
        await refused('runit-control', 'kraftwerk-victim@blue', 'kraftwerk-victim-worker');
        assert.match(await root('sv status /etc/service/kraftwerk-victim-worker'), /^run:/);
      });
      await t.test("connecting to the victim's uWSGI socket", () =>
        refused('socket', `${V}/current/.kraftwerk/uwsgi.sock`).then(() => refused('socket', `${V}/releases/${victimRelease}/.kraftwerk/uwsgi.sock`)));

      // ------------------------------------------------------------ PostgreSQL
      await t.test("the victim's database, as the attacker's role", () => refused('psql-victim-db'));
      await t.test("the victim's database, as the victim's role (peer authentication)", () => refused('psql-victim-role'));
      await t.test('a program run by the database server (COPY … TO PROGRAM)', async () => {
        await refused('psql-program');
        assert.equal((await root('ls /tmp/kw-attacker-copy-program 2>/dev/null; true')).trim(), '');
      });
      await t.test("the victim's env file read by the database server (pg_read_file)", () => refused('psql-read-file'));
      await t.test("the victim's queries (pg_stat_activity)", async () => {
        const r = await attack('psql-activity');
        assertNoLeak(r.stdout + r.stderr, 'pg_stat_activity');
        assert.doesNotMatch(r.stdout, /secrets/i, `the victim's query text:\n${r.stdout}`);
      });

      // ------------------------------------------------------------ Redis
      const victimKeysIntact = async () => {
        assert.equal((await adminRedis('GET victim:secret')).trim(), SECRET.redis, "the victim's key is still there");
        assert.match(await adminRedis('FUNCTION LIST'), /victimlib/, "the victim's function library is still there");
      };
      // redis-cli exits 0 on an error reply: the reply says whether Redis refused.
      await t.test('Redis: GET victim:secret', async () => {
        const r = await attack('redis', 'GET', 'victim:secret');
        assertNoLeak(r.stdout + r.stderr, 'GET victim:secret');
        assert.match(r.stdout, /NOPERM/, `GET victim:secret was not refused:\n${printed(r)}`);
      });
      await t.test("Redis: SCAN lists no key of the victim's", async () => {
        const r = await attack('redis-scan');
        assertNoLeak(r.stdout + r.stderr, 'SCAN');
        assert.doesNotMatch(r.stdout, /victim:/, `SCAN showed the victim's key names:\n${r.stdout}`);
      });
      await t.test("Redis: KEYS * lists no key of the victim's", async () => {
        const r = await attack('redis', 'KEYS', '*');
        assert.doesNotMatch(r.stdout, /victim:/, `KEYS showed the victim's key names:\n${r.stdout}`);
      });
      await t.test("Redis: RANDOMKEY names no key of the victim's", async () => {
        const r = await attack('redis-randomkey');
        assert.doesNotMatch(r.stdout, /victim:/, `RANDOMKEY named the victim's keys:\n${r.stdout.split('\n').slice(0, 5).join('\n')}`);
      });
      await t.test("Redis: SORT … GET victim:* reads no key of the victim's", async () => {
        const r = await attack('redis-sort-get');
        assertNoLeak(r.stdout + r.stderr, 'SORT GET');
      });
      await t.test("Redis: a script reading the victim's key (EVAL)", async () => {
        const r = await attack('redis-eval');
        assertNoLeak(r.stdout + r.stderr, 'EVAL');
      });
      await t.test('Redis: PSUBSCRIBE * (every channel)', async () => {
        const r = await attack('redis-psubscribe');
        assert.doesNotMatch(r.stdout, /^psubscribe$/m, `PSUBSCRIBE * was accepted:\n${r.stdout}`);
      });
      for (const command of [['FUNCTION', 'FLUSH'], ['FUNCTION', 'DELETE', 'victimlib'], ['FLUSHALL'], ['FLUSHDB']]) {
        await t.test(`Redis: ${command.join(' ')} leaves the victim's data`, async () => {
          await loadVictimLibrary(); // an earlier case that went through does not decide this one
          await attack('redis', ...command);
          await victimKeysIntact();
        });
      }

      // ------------------------------------------------------------ nginx
      const linked = await attack('link-uploads');
      assert.equal(linked.code, 0, `the attacker makes symlinks in its own uploads:\n${printed(linked)}`);
      const fetch = (urlPath: string) => httpGet(address, 'attacker.test', urlPath);
      await t.test("control: nginx serves the attacker's own static files and uploads", async () => {
        assert.deepEqual(await fetch('/static/ok.txt'), { status: 200, body: 'attacker static\n' });
        assert.deepEqual(await fetch('/uploads/own.txt'), { status: 200, body: 'attacker upload\n' });
      });
      const served = async (urlPath: string) => {
        const r = await fetch(urlPath);
        assertNoLeak(r.body, `GET ${urlPath} (Host: attacker.test)`);
        assert.notEqual(r.status, 200, `GET ${urlPath} (Host: attacker.test) was served:\n${r.body.slice(0, 500)}`);
      };
      for (const [where, prefix] of [['uploads (written by its code)', '/uploads'], ['static files (made by its release command)', '/static']] as const) {
        await t.test(`nginx: a symlink in its ${where} to the victim's env file`, () => served(`${prefix}/victim-env`));
        await t.test(`nginx: a symlink in its ${where} to the victim's code`, () => served(`${prefix}/victim-code`));
        await t.test(`nginx: a symlink in its ${where} to /etc/shadow`, () => served(`${prefix}/shadow`));
        await t.test(`nginx: a symlink in its ${where} to the victim's release folder`, async () => {
          await served(`${prefix}/victim-release/.kraftwerk/env`);
          await served(`${prefix}/victim-release/app.py`);
        });
      }
      await t.test("nginx: a symlink in its uploads to the victim's env.local and uploads", async () => {
        await served('/uploads/victim-env-local');
        await served('/uploads/victim-uploads/private.txt');
      });

      // ------------------------------------------------------------ its release command
      const releaseLog = await root('cat /srv/attacker/shared/uploads/release.log');
      const releaseAttempt = (name: string) => {
        const line = releaseLog.split('\n').find((l) => l.startsWith(`${name}: `));
        assert.ok(line, `the release command tried ${name}:\n${releaseLog}`);
        assertNoLeak(line, `release command ${name}`);
        assert.match(line, new RegExp(`^${name}: denied`), `the release command's ${name} went through:\n${line}`);
      };
      assert.match(releaseLog, /^done$/m, `the release command ran to its end:\n${releaseLog}`);
      await t.test("release command: reading the victim's env, env.local and code", () => {
        releaseAttempt('read-victim-env');
        releaseAttempt('read-victim-env-local');
        releaseAttempt('read-victim-code');
      });
      await t.test("release command: writing its own release's env file (root sources it)", async () => {
        releaseAttempt('append-own-env');
        assert.equal((await root('ls /etc/kw-attacker-release-root 2>/dev/null; true')).trim(), '');
      });
      await t.test("release command: writing its own release's uWSGI ini (root starts uWSGI with it)", () => releaseAttempt('append-own-ini'));
      await t.test("release command: replacing its own release's .kraftwerk folder", () => releaseAttempt('replace-own-kraftwerk-dir'));
      await t.test("release command: replacing its own release's .venv link", () => releaseAttempt('replace-own-venv-link'));
      await t.test('release command: writing into its own virtualenv', () => releaseAttempt('write-own-venv'));

      // ------------------------------------------------------------ its own package (requirements.txt, from its wheels/)
      await t.test("its own package's .pth file (run by every Python started with its venv): no root process runs it", async () => {
        const uid = (await root('id -u kw-attacker')).trim();
        const seen = await root('ls /tmp/kw-attacker-pth-* /etc/kw-attacker-pth-root 2>/dev/null; true');
        assert.match(seen, new RegExp(`/tmp/kw-attacker-pth-${uid}$`, 'm'), `control: the site's own Python ran the .pth:\n${seen}`);
        assert.doesNotMatch(seen, /kw-attacker-pth-(0|root)$/m, `root started Python with the site's venv (uWSGI before it drops to the site?):\n${seen}`);
      });

      // ------------------------------------------------------------ root: files a root process reads
      await t.test('no file or folder a root process reads is writable by the attacker (outside an allow-list)', async () => {
        // The lock files of the node's cron jobs (the path each crontab line names) and their folders.
        const locks = (await root("grep -ho 'flock -n [^ ]*' /etc/cron.d/kraftwerk-* | cut -d' ' -f3 | tr -d \"'\" | sort -u")).trim().split('\n').filter(Boolean);
        assert.ok(locks.length, 'the crontabs name their lock files');
        const lockPlaces = [...new Set(locks.flatMap((l) => [l, path.dirname(l)]))];
        const places = [
          '/srv',
          '/var/log/kraftwerk',
          '/etc/sv',
          '/etc/service',
          '/etc/cron.d',
          '/etc/kraftwerk',
          '/etc/nginx',
          '/etc/redis',
          ...lockPlaces,
        ];
        const writable = (
          // A symlink is not written through by replacing it (that needs its folder, which is listed itself).
          await root(`cd / && runuser -u kw-attacker -- find ${places.map(quote).join(' ')} ! -type l -writable -print 2>/dev/null; true`)
        )
          .split('\n')
          .filter(Boolean);
        // What the site may write, and why no root process reads it there: its uploads (root only
        // archives them, tar does not follow links), its own log folders, and in a release, the top
        // folder (sticky: root's .kraftwerk and .venv cannot be replaced), what its release
        // commands made there (collectstatic), its own uWSGI socket (writing = connecting) and the
        // lock files of its own cron jobs (they run as the site; root's backup lock is elsewhere).
        const allowed = [
          /^\/srv\/attacker\/shared\/locks(\/.*)?$/,
          /^\/srv\/attacker\/releases\/\d{8}T\d{6}Z\/\.kraftwerk\/uwsgi\.sock$/,
          /^\/srv\/attacker\/shared\/uploads(\/.*)?$/,
          /^\/var\/log\/kraftwerk\/attacker(\/.*)?$/,
          /^\/srv\/attacker\/releases\/\d{8}T\d{6}Z$/,
          /^\/srv\/attacker\/releases\/\d{8}T\d{6}Z\/(?!\.kraftwerk(\/|$)|\.venv(\/|$))[^/]+(\/.*)?$/,
        ];
        const bad = writable.filter((p) => !allowed.some((re) => re.test(p)));
        assert.deepEqual(bad, [], `the attacker can write where root reads:\n${bad.join('\n')}`);
        t.diagnostic(`writable by the attacker (all allowed): ${writable.length} paths`);
      });

      // ------------------------------------------------------------ root: svlogd and runit's log scripts
      await t.test("a log folder swapped for a symlink before its worker's logger restarts: root does not chown the target", async () => {
        const r = await attack('swap-worker-log', TARGETS.worker);
        t.diagnostic(`swap-worker-log: exit ${r.code}\n${r.stdout}${r.stderr}`);
        await sleep(3000); // runsv restarts a log service after 1 s
        assert.equal((await root(`stat -c '%U:%G %a' ${TARGETS.worker}`)).trim(), 'root:root 755');
      });
      await t.test("a processor in the live web slot's log config, and a symlinked `current` in the spare's: after a log restart, root runs and creates nothing", async () => {
        const r = await attack('arm-web-log', SVLOGD_FILE);
        t.diagnostic(`arm-web-log: exit ${r.code}\n${r.stdout}${r.stderr}`);
        // What a reboot does: every logger starts again, reading its folder's config.
        await root('sv restart /etc/service/kraftwerk-attacker@blue/log /etc/service/kraftwerk-attacker@green/log >/dev/null');
        await sleep(1000);
        for (let i = 0; i < 3; i++) assert.equal((await fetch('/noise')).status, 200);
        await sleep(3000);
        const seen = await root(
          `ls -l /etc/kw-attacker-was-root-web ${SVLOGD_FILE} 2>/dev/null; cat /tmp/kw-attacker-processor-web.uid 2>/dev/null; true`,
        );
        assert.doesNotMatch(seen, /kw-attacker-was-root-web/, `root ran the site's svlogd processor:\n${seen}`);
        assert.doesNotMatch(seen, new RegExp(SVLOGD_FILE), `root's svlogd created a file through the site's symlink:\n${seen}`);
        assert.doesNotMatch(seen, /^0$/m, `the processor ran as uid 0:\n${seen}`);
      });

      // ------------------------------------------------------------ the cron attacks (armed at the start)
      // Two ticks after arming: the first one the attacker's grab can hold the lock in, the next the victim's job needs.
      const grabLog = async () => root('cat /srv/attacker/shared/uploads/grab.log 2>/dev/null; true');
      let grabbed = '';
      for (let i = 0; i < 100 && !/^(held|refused) /m.test(grabbed); i++) {
        await sleep(2000);
        grabbed = await grabLog();
      }
      const firstGrab = /^(held|refused) (\d+) (.*)$/m.exec(grabbed);
      assert.ok(firstGrab, `the attacker's cron job grab ran within 200 s:\n${grabbed}`);
      const grabAt = Number(firstGrab[2]);
      // The victim's next minute starts within 60 s of the grab; give its job 10 s more.
      const waitUntil = (grabAt + 72) * 1000;
      if (Date.now() < waitUntil) await sleep(waitUntil - Date.now());

      await t.test("taking the victim's cron lock does not skip the victim's job", async () => {
        const ticks = (await root(`cat ${V}/shared/uploads/ticks.log`)).split('\n').map((l) => Number(/^start (\d+)/.exec(l)?.[1])).filter(Boolean);
        t.diagnostic(`grab: ${firstGrab[0]}; victim ticks: ${ticks.join(' ')}`);
        // Held from grabAt for 65 s: one minute of the victim's falls in (grabAt + 2, grabAt + 62].
        const during = ticks.filter((s) => s > grabAt + 2 && s <= grabAt + 70);
        assert.ok(during.length > 0, `the victim's job did not run while the attacker held "${firstGrab[3]}" (${firstGrab[1]} at ${grabAt}); its runs: ${ticks.join(' ')}`);
      });
      await t.test("a processor in its cron job's svlogd config: root does not run it", async () => {
        const seen = await root(`ls -l /etc/kw-attacker-was-root-cron 2>/dev/null; cat /tmp/kw-attacker-processor-cron.uid 2>/dev/null; true`);
        assert.doesNotMatch(seen, /kw-attacker-was-root-cron/, `root ran the site's processor:\n${seen}`);
        assert.doesNotMatch(seen, /^0$/m, `the processor ran as uid 0:\n${seen}`);
      });
      await t.test('a cron log folder swapped for a symlink before a tick: root does not chown the target', async () => {
        const ticked = await root('cat /srv/attacker/shared/uploads/swap.log 2>/dev/null; true');
        const after = ticked.split('\n').map((l) => Number(/^swap tick (\d+)/.exec(l)?.[1])).filter((s) => s > armed);
        t.diagnostic(`swap job ran at ${after.join(' ') || 'never (since arming)'}`);
        assert.equal((await root(`stat -c '%U:%G %a' ${TARGETS.cron}`)).trim(), 'root:root 755');
      });
      await t.test("the attacker's worker saw no secret of the victim's in any process (command lines, environments)", async () => {
        const spy = await root('cat /srv/attacker/shared/uploads/spy.log 2>/dev/null; true');
        assert.match(await root('pgrep -u kw-attacker -f "attacks/spy.py" || true'), /\d/, 'the spy runs');
        assertNoLeak(spy, "the attacker's spy");
        assert.doesNotMatch(spy, /^environ /m, `the spy read another user's process environment:\n${spy.slice(0, 2000)}`);
      });
      await t.test('the victim still serves, its data intact', async () => {
        assert.deepEqual(await httpGet(address, 'victim.test', '/'), { status: 200, body: 'victim site\n' });
        assert.deepEqual(await httpGet(address, 'victim.test', '/db'), { status: 200, body: 'secrets=1\n' });
        await victimKeysIntact();
      });

      // ------------------------------------------------------------ hostile kraftwerk.yaml values (last: an accepted one changes the node)
      const fingerprint = () =>
        root(`cd / && { ls -1 /srv /srv/*/releases /etc/nginx/sites-enabled /etc/sv /etc/cron.d /etc/kraftwerk/sites
getent passwd | cut -d: -f1
runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database ORDER BY 1'
sha256sum /etc/nginx/sites-available/* /etc/cron.d/*; } 2>&1`);
      let hostileSites = 0;
      const hostile = async (key: string, change: Record<string, unknown>, keyPattern: RegExp) => {
        const dir = copyProject(t, 'attacker');
        const doc = parseDocument(readFileSync(path.join(dir, 'kraftwerk.yaml'), 'utf8'));
        for (const k of ['release', 'processes', 'cron', 'apt']) doc.delete(k);
        doc.set('package', 'hostile');
        // Its own domain each: one that was accepted does not make the next refused for a clash.
        doc.set('domain', `hostile-${++hostileSites}.test`);
        for (const [k, v] of Object.entries(change)) doc.set(k, v);
        writeFileSync(path.join(dir, 'kraftwerk.yaml'), doc.toString());
        const before = await fingerprint();
        const r = await cli(['deploy', NODE], dir, 10 * 60_000);
        const after = await fingerprint();
        assert.equal(r.code, 2, `kraftwerk deploy with ${key} ${JSON.stringify(change)}:\n${printed(r)}`);
        assert.match(r.stderr, keyPattern, `the error names ${key}:\n${printed(r)}`);
        assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace:\n${r.stderr}`);
        assert.equal(after, before, 'nothing on the node changed');
      };
      const cases: [string, Record<string, unknown>, RegExp][] = [
        ['static.path', { static: { path: '.' } }, /static/],
        ['static.path', { static: { path: '../..' } }, /static/],
        ['static.url', { static: { path: 'public', url: '/s/ { alias /srv/victim/current/.kraftwerk/; } location /x/' } }, /static\.url|url/],
        ['static.url', { static: { path: 'public', url: '/s/\n        alias /srv/victim/current/.kraftwerk/;\n' } }, /static\.url|url/],
        ['static.expires', { static: { path: 'public', expires: '30d; add_header X-Injected yes' } }, /static\.expires|expires/],
        ['environ', { environ: { BAD: 'a\0b' } }, /environ/],
        ...['postgres', 'template1', 'root', 'www-data', 'redis'].map((name): [string, Record<string, unknown>, RegExp] => ['package', { package: name }, /package/]),
      ];
      for (const [key, change, pattern] of cases) {
        await t.test(`kraftwerk.yaml: ${key} ${JSON.stringify(Object.values(change)[0])} exits 2 naming the key, before the node is touched`, () =>
          hostile(key, change, pattern));
      }
    });
  });
});
