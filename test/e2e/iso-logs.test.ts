/**
 * Issue 12 items 1, 2, 6 and issue 13 item 4, on a real sandbox: a site with a
 * worker and a cron job, attacked from its own user (what its code can do).
 * - a `config` with a `!processor` in its log folders runs as the site, never as root;
 * - it cannot swap a log folder for a symlink, and a cron tick or a log restart
 *   chowns nothing outside;
 * - another site (another unprivileged user) cannot take its cron locks;
 * - the cron lines and worker services of a release that fails before its
 *   switch never go live; after a rollback the old release's lines are in force;
 * - a node in the layout of the previous Kraftwerk (site-owned log folder, a
 *   planted link, root svlogd files, old crontab and /run/lock files) is fixed
 *   by the next deploy.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { quote } from '../../core/shell/sh.ts';
import { runCli, sandboxSkip, withPreparedSandbox, type CliResult } from './harness.ts';
import { onNode, printed, SAFE_FIXTURE, setupRecipe } from './safe-helpers.ts';

const NODE = 'iso-logs';
const SITE = 'isosite';
const USER = `kw-${SITE}`;
const LOGS = `/var/log/kraftwerk/${SITE}`;
const OTHER = 'kw-iso-other';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Version {
  tick?: string;
  extraCron?: { name: string; command: string }[];
  extraProcess?: boolean;
  release?: string[];
}

function config(v: Version): string {
  const cron = [{ name: 'tick', command: v.tick ?? 'echo "tick from $(id -un) in $(pwd -P)"' }, ...(v.extraCron ?? [])];
  return `package: ${SITE}
domain: iso-site.test
wsgi: app:application
healthcheck:
  path: /health
environ:
  SAFE_GREETING: hello
processes:
  worker: python3 -u -c "import os, time; print('worker up as', os.getuid()); time.sleep(86400)"
${v.extraProcess ? '  late-worker: sleep 86400\n' : ''}cron:
${cron.map((c) => `  - name: ${c.name}\n    schedule: "* * * * *"\n    command: ${JSON.stringify(c.command)}\n`).join('')}backups:
  schedule: "0 3 * * *"
release: ${JSON.stringify(v.release ?? [])}
`;
}

/** As the site user on the node (what the site's own code could run); never fails the test itself. */
async function asSite(script: string, user = USER): Promise<{ code: number | null; out: string }> {
  const r = await runCli(['sandbox', 'ssh', NODE, '--', 'runuser', '-u', user, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

/** A line of /etc/cron.d as cron runs it: as its user field, through sh, from a folder it can read (cron: its home). */
function asCron(line: string): string {
  const fields = line.trim().split(' ');
  return `(cd / && runuser -u ${fields[5]} -- sh -c ${quote(fields.slice(6).join(' '))})`;
}

async function waitFor(what: string, check: () => Promise<boolean>, tries = 40, ms = 2000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await sleep(ms);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('svlogd, cron and workers: nothing of the site runs as root', { skip: sandboxSkip() }, () => {
  it('on one sandbox', { timeout: 40 * 60_000 }, async (t: TestContext) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-iso-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(SAFE_FIXTURE, dir, { recursive: true });
    writeFileSync(path.join(dir, 'version.txt'), 'A\n');
    const setVersion = (v: Version) => writeFileSync(path.join(dir, 'kraftwerk.yaml'), config(v));
    const cli = (args: string[]): Promise<CliResult> => runCli(args, { cwd: dir, timeoutMs: 20 * 60_000 });
    const deployOk = async (extra: string[] = []) => {
      const r = await cli(['deploy', NODE, ...extra]);
      assert.equal(r.code, 0, `kraftwerk deploy:\n${printed(r)}`);
      return r;
    };
    setVersion({});

    await withPreparedSandbox(t, NODE, setupRecipe(), async () => {
      const setup = await cli(['setup-node', NODE]);
      assert.equal(setup.code, 0, printed(setup));
      await deployOk();
      const uid = (await onNode(NODE, `id -u ${USER}`)).trim();
      await onNode(NODE, `id -u ${OTHER} >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin ${OTHER}`);

      await t.test('the log folder is root\'s, each service\'s folder the site\'s, every svlogd runs as the site', async () => {
        assert.equal((await onNode(NODE, `stat -c '%U:%G %a' ${LOGS}`)).trim(), `root:${USER} 750`);
        for (const d of ['web@blue', 'web@green', 'worker', 'cron-tick', 'cron-backup']) {
          assert.equal((await onNode(NODE, `stat -c '%U %a' ${LOGS}/${d}`)).trim(), `${USER} 750`, d);
        }
        await waitFor('the cron job to run once', async () => /tick from/.test(await onNode(NODE, `cat ${LOGS}/cron-tick/current 2>/dev/null; true`)));
        assert.match(await onNode(NODE, `cat ${LOGS}/cron-tick/current`), new RegExp(`tick from ${USER} in /srv/${SITE}/releases/\\d{8}T\\d{6}Z`));
        const loggers = await onNode(NODE, `ps -eo user:32=,args= | grep '[s]vlogd .*${LOGS}/'; true`);
        assert.match(loggers, /svlogd/);
        for (const line of loggers.trim().split('\n')) assert.equal(line.trim().split(/\s+/)[0], USER, `svlogd as root: ${line}`);
      });

      await t.test('a config with !processor in its log folders runs as the site, not as root', async () => {
        // The site writes the config (a processor runs on each rotation), as its code could.
        for (const d of ['web@blue', 'web@green', 'worker']) {
          const w = await asSite(`printf '%s\\n' ${quote(`!sh -c 'id -u > /tmp/iso-processor-${d}'`)} > ${LOGS}/${d}/config`);
          assert.equal(w.code, 0, w.out);
        }
        // The next start of each logger reads it; ALRM rotates `current` (the web and worker logs are not empty).
        for (const svc of [`kraftwerk-${SITE}@blue`, `kraftwerk-${SITE}@green`, `kraftwerk-${SITE}-worker`]) {
          await onNode(NODE, `sv restart /etc/service/${svc}/log >/dev/null; sleep 1; sv alarm /etc/service/${svc}/log; true`);
        }
        for (const d of ['web@blue', 'worker']) {
          await waitFor(`the processor of ${d}`, async () => (await onNode(NODE, `cat /tmp/iso-processor-${d} 2>/dev/null; true`)).trim() !== '', 15, 1000);
          assert.equal((await onNode(NODE, `cat /tmp/iso-processor-${d}`)).trim(), uid, `the processor in ${d} ran as uid ${uid}, not root`);
        }
      });

      await t.test('the site cannot swap a log folder for a symlink; a cron tick and a log restart chown nothing', async () => {
        await onNode(NODE, 'install -d -m 0755 -o root -g root /etc/iso-target');
        const swap = await asSite(`mv ${LOGS}/cron-tick /tmp/iso-moved || exit 1; ln -s /etc/iso-target ${LOGS}/cron-tick`);
        assert.notEqual(swap.code, 0, `the site swapped its log folder: ${swap.out}`);
        const plant = await asSite(`ln -s /etc/iso-target ${LOGS}/cron-new`);
        assert.notEqual(plant.code, 0, 'the site added a link to its log folder');
        const before = (await onNode(NODE, `cat ${LOGS}/cron-tick/current | wc -l`)).trim();
        await waitFor('the next cron tick', async () => (await onNode(NODE, `cat ${LOGS}/cron-tick/current | wc -l`)).trim() !== before, 45);
        await onNode(NODE, `sv restart /etc/service/kraftwerk-${SITE}-worker/log /etc/service/kraftwerk-${SITE}@blue/log >/dev/null`);
        assert.equal((await onNode(NODE, `stat -c %U /etc/iso-target ${LOGS}`)).trim(), 'root\nroot');
      });

      await t.test('another site cannot take its cron locks', async () => {
        const crontab = await onNode(NODE, `cat /etc/cron.d/kraftwerk-${SITE}`);
        const locks = [...crontab.matchAll(/flock -n (\S+)/g)].map((m) => m[1]!);
        assert.equal(locks.length, 2, crontab);
        for (const lock of locks) {
          assert.doesNotMatch(lock, /^\/run\/lock\//);
          const take = await asSite(`flock -n ${quote(lock)} true`, OTHER);
          assert.notEqual(take.code, 0, `${OTHER} could take ${lock}`);
        }
        // Holding the lock files of the layout before (world-writable /run/lock) stops nothing either.
        await onNode(NODE, `runuser -u ${OTHER} -- sh -c 'for n in tick backup; do setsid flock /run/lock/kraftwerk-${SITE}-cron-$n.lock sleep 90 </dev/null >/dev/null 2>&1 & done'`);
        const before = (await onNode(NODE, `cat ${LOGS}/cron-tick/current | wc -l`)).trim();
        await waitFor('a cron tick while the other user holds locks', async () => (await onNode(NODE, `cat ${LOGS}/cron-tick/current | wc -l`)).trim() !== before, 45);
        await onNode(NODE, `pkill -u ${OTHER} flock; pkill -u ${OTHER} sleep; true`);
      });

      let good = '';
      await t.test('the cron lines and workers of a release that fails before its switch never go live', async () => {
        good = await onNode(NODE, `cat /etc/cron.d/kraftwerk-${SITE}`);
        setVersion({ extraCron: [{ name: 'late', command: 'echo late' }], extraProcess: true, release: ['sleep 15 && exit 3'] });
        const deploy = cli(['deploy', NODE]);
        let done = false;
        void deploy.finally(() => (done = true));
        const seen: string[] = [];
        while (!done) {
          seen.push(await onNode(NODE, `grep -c 'cron-late' /etc/cron.d/kraftwerk-${SITE}; ls -d /etc/sv/kraftwerk-${SITE}-late-worker 2>/dev/null; true`));
          await sleep(1000);
        }
        const r = await deploy;
        assert.equal(r.code, 1, printed(r));
        assert.ok(seen.length > 5, 'the crontab was watched while the release command ran');
        assert.ok(seen.every((s) => s.trim() === '0'), `the failed release's crontab or worker went live: ${JSON.stringify(seen)}`);
        assert.equal(await onNode(NODE, `cat /etc/cron.d/kraftwerk-${SITE}`), good);
        assert.equal((await onNode(NODE, `ls -d /etc/sv/kraftwerk-${SITE}-late-worker 2>/dev/null; true`)).trim(), '');
      });

      await t.test('after a rollback the old release\'s cron lines are in force', async () => {
        setVersion({ tick: 'echo tock', extraCron: [{ name: 'second', command: 'echo second' }] });
        await deployOk();
        assert.match(await onNode(NODE, `cat /etc/cron.d/kraftwerk-${SITE}`), /cron-second/);
        const back = await cli(['rollback', NODE]);
        assert.equal(back.code, 0, printed(back));
        assert.equal(await onNode(NODE, `cat /etc/cron.d/kraftwerk-${SITE}`), good, 'the crontab of the release rolled back to');
        const line = (await onNode(NODE, `grep 'cron-tick' /etc/cron.d/kraftwerk-${SITE}`)).trim();
        await onNode(NODE, `${asCron(line)}`);
        assert.match((await onNode(NODE, `tail -n 1 ${LOGS}/cron-tick/current`)), /tick from/, 'the job runs the old release\'s command');
      });

      await t.test('a node in the layout of the previous Kraftwerk is fixed by the next deploy', async () => {
        setVersion({});
        // What the previous version left (and what its site could then do in its own log folder).
        await onNode(
          NODE,
          `install -d -m 0755 -o root -g root /etc/iso-target2
chown ${USER}:adm ${LOGS}
rm -rf ${LOGS}/web@green && runuser -u ${USER} -- ln -s /etc/iso-target2 ${LOGS}/web@green
printf 'root svlogd\\n' > ${LOGS}/web@blue/lock
printf '* * * * * root install -d -m 0750 -o ${USER} -g adm ${LOGS} ${LOGS}/cron-tick && { flock -n /run/lock/kraftwerk-${SITE}-cron-tick.lock true 2>&1 | svlogd -tt ${LOGS}/cron-tick; }\\n' > /etc/cron.d/kraftwerk-${SITE}
touch /run/lock/kraftwerk-${SITE}-cron-tick.lock
# The previous version kept no note of these folders, and prepared the site with other commands.
rm -f /srv/${SITE}/.kraftwerk/provisioned/site-dirs /srv/${SITE}/.kraftwerk/provisioned/site`,
        );
        // The same Kraftwerk and project: only --force deploys (an upgrade of Kraftwerk changes the fingerprint itself).
        await deployOk(['--force']);
        assert.equal((await onNode(NODE, `stat -c '%U:%G %a' ${LOGS}`)).trim(), `root:${USER} 750`);
        assert.equal((await onNode(NODE, `stat -c '%F %U' ${LOGS}/web@green ${LOGS}/web@blue`)).trim(), `directory ${USER}\ndirectory ${USER}`);
        assert.equal((await onNode(NODE, 'stat -c %U /etc/iso-target2')).trim(), 'root', 'the planted link was not followed');
        assert.doesNotMatch(await onNode(NODE, `cat /etc/cron.d/kraftwerk-${SITE}`), / root install -d /);
        assert.equal((await onNode(NODE, `ls /run/lock/kraftwerk-${SITE}-* 2>/dev/null; true`)).trim(), '');
        const loggers = await onNode(NODE, `ps -eo user:32=,args= | grep '[s]vlogd .*${LOGS}/'; true`);
        for (const line of loggers.trim().split('\n')) assert.equal(line.trim().split(/\s+/)[0], USER, `svlogd as root: ${line}`);
      });
    });
  });
});
