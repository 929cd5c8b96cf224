/**
 * Venvs and backups on one sandbox node (issues 12 and 13): pip runs as the
 * site's build user and the site cannot write its venv; a failed
 * `--upgrade-packages` leaves the live release with its venv (built beside
 * it, never in place); venvs go with the last release that used them;
 * `backup verify` passes on a good backup, reports a truncated one as bad, and
 * leaves no scratch database, role or folder. Real sandbox, real CLI.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { REPO_ROOT, sandboxSkip } from './harness.ts';
import { deployOk, onNode, pageOf, printed, SafeProject, servedPage, SITE, withSetUpNodes } from './safe-helpers.ts';

const NODE = 'venv-one';
const ROOT = `/srv/${SITE}`;
/** A local sdist whose build backend (run by pip) records the user that ran it; it needs no index. */
const PROBE = path.join(REPO_ROOT, 'test', 'fixtures', 'sdists', 'kwprobe-0.1');

/** The project: postgres and uploads, 2 releases kept, verified backups, the probe in its wheelhouse. */
function prepare(project: SafeProject): void {
  const file = path.join(project.dir, 'kraftwerk.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  doc.set('services', ['postgres', 'files']);
  doc.set('keep_releases', 2);
  doc.set('backups', { schedule: '@daily', keep: 3, verify: true });
  writeFileSync(file, doc.toString());
  mkdirSync(path.join(project.dir, 'wheels'), { recursive: true });
  execFileSync('tar', ['-czf', path.join(project.dir, 'wheels', 'kwprobe-0.1.tar.gz'), '-C', path.dirname(PROBE), path.basename(PROBE)]);
  setRequirements(project, 'A', '');
}

/**
 * requirements.txt names the probe and includes extra.txt; the venv hash is
 * that of requirements.txt, so what extra.txt says changes no venv name: the
 * same hash, upgraded.
 */
function setRequirements(project: SafeProject, tag: string, extra: string): void {
  writeFileSync(path.join(project.dir, 'requirements.txt'), `kwprobe\n-r extra.txt\n# venv ${tag}\n`);
  writeFileSync(path.join(project.dir, 'extra.txt'), extra);
}

const liveVenv = async () => (await onNode(NODE, `readlink ${ROOT}/current/.venv`)).trim();
const venvNames = async () => (await onNode(NODE, `ls -1 ${ROOT}/venvs`)).trim().split('\n').sort();

/** Scratch databases, roles and folders of `backup verify` that are still there. */
async function scratchLeft(): Promise<string> {
  return (
    await onNode(
      NODE,
      `cd / && runuser -u postgres -- psql -X -At -c "SELECT datname FROM pg_database WHERE datname LIKE 'kwverify%' UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE 'kwverify%'"; ls -d /var/tmp/kraftwerk-verify.* 2>/dev/null; true`,
    )
  ).trim();
}

describe('venvs and verified backups on one node', { skip: sandboxSkip() }, () => {
  it('pip without root, upgrades beside the live venv, pruning, backup verify', { timeout: 50 * 60_000 }, async (t) => {
    const project = SafeProject.create(t).setVersion('A');
    prepare(project);
    await withSetUpNodes(t, project, [NODE], async ([node]) => {
      const address = node!.address;

      await t.test('pip runs as the build user; the site cannot write its venv', async () => {
        await deployOk(project, NODE);
        assert.equal(await servedPage(address), pageOf('A'));
        const who = await project.cli(['run', NODE, '--', 'python -c "import kwprobe; print(kwprobe.BUILT_BY)"']);
        assert.equal(who.code, 0, printed(who));
        assert.equal(who.stdout.trim(), `kwb-${SITE}`, 'the sdist was built by the build user, not by root');
        const venv = await liveVenv();
        // Every file but the marker is the build user's, none writable by group or others.
        const foreign = await onNode(NODE, `find ${venv} ! -type l \\( \\( ! -user kwb-${SITE} ! -name .kraftwerk-complete \\) -o -perm /022 \\) -print | head`);
        assert.equal(foreign.trim(), '');
        const attempts = await onNode(
          NODE,
          `cd / && runuser -u kw-${SITE} -- sh -c 'for f in ${venv} ${venv}/bin ${venv}/lib/python3*/site-packages ${venv}/lib/python3*/site-packages/kwprobe.py; do [ -w "$f" ] && echo "writable: $f"; done; touch ${venv}/bin/x 2>/dev/null && echo "wrote ${venv}/bin/x"; true'`,
        );
        assert.equal(attempts.trim(), '', 'the site user cannot change its venv');
      });

      await t.test('a failed --upgrade-packages leaves the live release with its venv', async () => {
        const live = await liveVenv();
        setRequirements(project, 'A', 'kraftwerk-no-such-package-xyz\n');
        const r = await project.cli(['deploy', NODE, '--upgrade-packages']);
        assert.equal(r.code, 1, printed(r));
        assert.equal(await servedPage(address), pageOf('A'));
        assert.equal(await liveVenv(), live);
        assert.equal((await onNode(NODE, `test -f ${live}/.kraftwerk-complete && echo complete; true`)).trim(), 'complete', 'the live venv is still complete');
        const probe = await project.cli(['run', NODE, '--', 'python -c "import kwprobe"']);
        assert.equal(probe.code, 0, `the live release still has its packages:\n${printed(probe)}`);

        // The next deploy (same hash) uses the live venv as it is, and the partial upgrade goes.
        setRequirements(project, 'A', '');
        await deployOk(project, NODE);
        assert.equal(await liveVenv(), live);
        assert.deepEqual(await venvNames(), [path.basename(live)]);
      });

      await t.test('--upgrade-packages builds a new venv; venvs go with the releases that used them', async () => {
        const before = await liveVenv();
        await deployOk(project, NODE, ['--upgrade-packages']);
        const upgraded = await liveVenv();
        assert.match(path.basename(upgraded), new RegExp(`^${path.basename(before)}-u\\d{8}T\\d{6}Z$`));
        setRequirements(project, 'B', '');
        await deployOk(project, NODE);
        const b = await liveVenv();
        setRequirements(project, 'C', '');
        await deployOk(project, NODE);
        const c = await liveVenv();
        // keep_releases 2: the releases of B and C stay, and only their venvs.
        assert.deepEqual(await venvNames(), [path.basename(b), path.basename(c)].sort());
      });

      await t.test('backup verify: a good backup passes, a truncated one is bad, no scratch is left', async () => {
        const sql = await project.cli(['run', NODE, '--', `psql -X -q "$DATABASE_URL" -c "CREATE TABLE notes (n int); INSERT INTO notes SELECT generate_series(1, 7)"`]);
        assert.equal(sql.code, 0, printed(sql));
        await onNode(NODE, `printf hello > ${ROOT}/shared/uploads/a.txt && chown kw-${SITE}: ${ROOT}/shared/uploads/a.txt`);
        const backup = await project.cli(['backup', NODE]);
        assert.equal(backup.code, 0, printed(backup));
        const id = /Backup (\d{8}T\d{6}Z) of/.exec(printed(backup))?.[1];
        assert.ok(id, printed(backup));

        const good = await project.cli(['backup', 'verify', NODE, id]);
        assert.equal(good.code, 0, printed(good));
        assert.match(printed(good), /1 table, 7 rows/);
        assert.match(printed(good), /uploads: extracted into a scratch folder, 1 file/);
        assert.match(printed(good), new RegExp(`backup ${id} of ${SITE} on ${NODE} verified`));
        assert.equal(await scratchLeft(), '');

        const dump = `${ROOT}/backups/${id}/postgres.dump`;
        await onNode(NODE, `truncate -s $(($(stat -c %s ${dump}) / 2)) ${dump}`);
        const bad = await project.cli(['backup', 'verify', NODE, id]);
        assert.equal(bad.code, 1, printed(bad));
        assert.match(printed(bad), new RegExp(`backup ${id} of ${SITE} on ${NODE} is bad: PostgreSQL: the database does not restore`));
        assert.equal(await scratchLeft(), '', 'the failed check removed its scratch database, role and folder');

        // The scheduled script checks before it keeps; the backups folder is root's alone.
        const scheduled = await onNode(NODE, `sh ${ROOT}/.kraftwerk/backup.sh 2>&1`);
        assert.match(scheduled, /backup \d{8}T\d{6}Z verified/);
        assert.equal(await scratchLeft(), '');
        const write = await onNode(NODE, `cd / && runuser -u kw-${SITE} -- sh -c 'touch ${ROOT}/backups/x 2>/dev/null && echo wrote; ls ${ROOT}/backups 2>/dev/null && echo listed; true'`);
        assert.equal(write.trim(), '', 'the site can neither write nor list its backups folder');
      });
    });
  });
});
