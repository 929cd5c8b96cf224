/**
 * Secrets on one sandbox node (issues 12 and 13): `env set NAME` takes the
 * value from stdin and `--from-file` from a dotenv file, neither shows it in
 * the output (plain, --verbose or --dry-run); and a rollback runs the old
 * release with the site variables of now: a rotated secret does not come back,
 * a removed one stays removed, and the rollback says which environment it uses.
 * `secrets:` (issue 17): a local command's output reaches the app and no output, and
 * a failing command stops the deploy before it changes anything; `env pull` masks.
 * Real sandbox from the set-up snapshot, real CLI, HTTP from this machine.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { type CliResult, REPO_ROOT, runCli, sandboxSkip } from './harness.ts';
import { deployOk, describeAnswer, get, onNode, pageOf, printed, SafeProject, servedPage, SITE, withSetUpNodes } from './safe-helpers.ts';

const NODE = 'local-secrets';
const FIXTURE_APP = path.join(REPO_ROOT, 'test', 'fixtures', 'apps', 'secrets-site', 'app.py');

/** The CLI in the project's folder with `input` on its stdin. */
function cliWithStdin(project: SafeProject, args: readonly string[], input: string): Promise<CliResult> {
  return runCli(args, { cwd: project.dir, input });
}

/** Version `version` of the fixture, with the app that shows a variable at /env/<NAME>. */
function setVersion(project: SafeProject, version: string): SafeProject {
  project.setVersion(version);
  cpSync(FIXTURE_APP, path.join(project.dir, 'app.py'));
  return project;
}

async function variable(address: string, name: string): Promise<string> {
  const a = await get(address, `/env/${name}`);
  assert.equal(a.status, 200, `GET /env/${name}: ${describeAnswer(a)}`);
  return a.body!.trim().slice(name.length + 1);
}

function assertNotPrinted(r: CliResult, value: string, what: string): void {
  assert.ok(!`${r.stdout}\n${r.stderr}`.includes(value), `${what} printed the secret value:\n${printed(r)}`);
}

describe('secrets: env set without argv, and rollbacks that keep the current ones', { skip: sandboxSkip() }, () => {
  it('env set from stdin and --from-file, then rollbacks', { timeout: 60 * 60_000 }, async (t: TestContext) => {
    const project = setVersion(SafeProject.create(t), 'A');
    const scratch = mkdtempSync(path.join(tmpdir(), 'kw-local-secrets-'));
    t.after(() => rmSync(scratch, { recursive: true, force: true }));
    const first = `first-${randomBytes(6).toString('hex')}`;
    const rotated = `rotated-${randomBytes(6).toString('hex')}`;

    await withSetUpNodes(t, project, [NODE], async ([node]) => {
      const address = node!.address;
      const a = await deployOk(setVersion(project, 'A'), NODE);

      await t.test('env set NAME reads the value from stdin; it arrives and is not printed', async () => {
        const r = await cliWithStdin(project, ['env', 'set', NODE, 'SECRET'], `${first}\n`);
        assert.equal(r.code, 0, printed(r));
        assertNotPrinted(r, first, 'env set');
        assert.ok(!/visible to other local users/.test(r.stderr), `no argv warning when the value came from stdin:\n${printed(r)}`);
        assert.equal(await variable(address, 'SECRET'), first, 'the live release sees the value (graceful reload)');
        assert.match(await onNode(NODE, `cat /srv/${SITE}/shared/env.local`), new RegExp(`^SECRET=${first}$`, 'm'));
      });

      await t.test('env set --from-file loads a dotenv file', async () => {
        const file = path.join(scratch, 'site.env');
        writeFileSync(file, `# dotenv\nexport FROM_FILE="from file"\nEXTRA='soon gone'\n`);
        const r = await project.cli(['env', 'set', NODE, '--from-file', file]);
        assert.equal(r.code, 0, printed(r));
        assertNotPrinted(r, 'soon gone', 'env set --from-file');
        assert.equal(await variable(address, 'FROM_FILE'), 'from file');
      });

      await t.test('NAME=value on the command line still works, with a warning', async () => {
        const r = await project.cli(['env', 'set', NODE, 'PLAIN=visible']);
        assert.equal(r.code, 0, printed(r));
        assert.match(r.stderr, /PLAIN was given on the command line, where other local users can read it/);
        const un = await project.cli(['env', 'unset', NODE, 'PLAIN']);
        assert.equal(un.code, 0, printed(un));
      });

      const b = await deployOk(setVersion(project, 'B'), NODE);

      await t.test('rotating a secret: neither --verbose nor --dry-run prints it', async () => {
        const dry = await cliWithStdin(project, ['--dry-run', 'env', 'set', NODE, 'SECRET'], `dry-${rotated}\n`);
        assert.equal(dry.code, 0, printed(dry));
        assert.match(dry.stdout, /env\.local/, `the dry run shows what it would write:\n${printed(dry)}`);
        assertNotPrinted(dry, rotated, 'env set --dry-run');
        assert.equal(await variable(address, 'SECRET'), first, 'a dry run changes nothing');

        const r = await cliWithStdin(project, ['--verbose', 'env', 'set', NODE, 'SECRET'], rotated);
        assert.equal(r.code, 0, printed(r));
        assertNotPrinted(r, rotated, 'env set --verbose');
        assert.equal(await variable(address, 'SECRET'), rotated);

        const shown = await project.cli(['--verbose', 'env', NODE]);
        assert.equal(shown.code, 0, printed(shown));
        assert.match(shown.stdout, /^SECRET=\*\*\*/m);
        assertNotPrinted(shown, rotated, 'kraftwerk --verbose env');
        const un = await project.cli(['env', 'unset', NODE, 'EXTRA']);
        assert.equal(un.code, 0, printed(un));
      });

      await t.test('rollback to a release deployed before the secret existed: it runs with the current secret', async () => {
        const r = await project.cli(['rollback', NODE]);
        assert.equal(r.code, 0, printed(r));
        assert.match(
          `${r.stdout}\n${r.stderr}`,
          new RegExp(`environment: release ${a}'s generated values \\(\\d+\\) \\+ 2 site variables from kraftwerk env set \\(current\\)`),
          printed(r),
        );
        assertNotPrinted(r, rotated, 'rollback');
        assert.equal(await servedPage(address), pageOf('A'), 'release A serves, with its own environ:');
        assert.equal(await variable(address, 'SECRET'), rotated);
        assert.equal(await variable(address, 'FROM_FILE'), 'from file');
        assert.equal(await variable(address, 'EXTRA'), '(unset)');
        // cron, workers and `kraftwerk run` read the sh file: the same values.
        const env = await onNode(NODE, `cat /srv/${SITE}/releases/${a}/.kraftwerk/env`);
        assert.match(env, new RegExp(`^SECRET=${rotated}$`, 'm'));
      });

      await t.test('rollback to a release deployed with an older secret and a since removed one: neither comes back', async () => {
        const r = await project.cli(['rollback', NODE, '--to', b]);
        assert.equal(r.code, 0, printed(r));
        assert.equal(await servedPage(address), pageOf('B'));
        assert.equal(await variable(address, 'SECRET'), rotated, `release ${b} was deployed with the first secret`);
        assert.equal(await variable(address, 'EXTRA'), '(unset)', `release ${b} was deployed while EXTRA was set`);
      });

      await t.test('env pull prints what env set stored, masked unless --reveal', async () => {
        const masked = await project.cli(['env', 'pull', NODE]);
        assert.equal(masked.code, 0, printed(masked));
        // A dotenv file that env set --from-file reads back: a value is double-quoted where it needs to be.
        assert.match(masked.stdout, /^SECRET=("?)\*\*\*\1$/m);
        assert.match(masked.stdout, /^FROM_FILE=("?)\*\*\*\1$/m);
        assertNotPrinted(masked, rotated, 'env pull');
        assert.match(masked.stderr, /--reveal/);
        const revealed = await project.cli(['env', 'pull', NODE, '--reveal']);
        assert.equal(revealed.code, 0, printed(revealed));
        assert.match(revealed.stdout, new RegExp(`^SECRET=("?)${rotated}\\1$`, 'm'));
        assert.match(revealed.stdout, /^FROM_FILE="from file"$/m);
      });

      await t.test('secrets: a local command\'s output reaches the app, masked in every output; a failing one stops the deploy before anything changes', async () => {
        const fromVault = `vault-${randomBytes(6).toString('hex')}`;
        const store = path.join(scratch, 'vault.txt');
        writeFileSync(store, `${fromVault}\n`);
        // The command runs on this machine at each deploy; the trailing newline is dropped.
        project.editConfig((doc) => doc.set('secrets', { VAULT_TOKEN: `cat ${store}` }));
        const r = await project.cli(['--verbose', 'deploy', NODE]);
        assert.equal(r.code, 0, printed(r));
        assertNotPrinted(r, fromVault, 'deploy --verbose with secrets:');
        assert.equal(await variable(address, 'VAULT_TOKEN'), fromVault);
        const dry = await project.cli(['--dry-run', 'deploy', NODE]);
        assert.equal(dry.code, 0, printed(dry));
        assertNotPrinted(dry, fromVault, 'deploy --dry-run with secrets:');
        const listed = await project.cli(['env', NODE]);
        assert.equal(listed.code, 0, printed(listed));
        assert.match(listed.stdout, /^VAULT_TOKEN=\*\*\*\s+# kraftwerk\.yaml secrets/m);
        assertNotPrinted(listed, fromVault, 'env');

        const releasesBefore = await onNode(NODE, `ls /srv/${SITE}/releases`);
        project.editConfig((doc) => doc.set('secrets', { VAULT_TOKEN: `cat ${store}.missing` }));
        const failed = await project.cli(['deploy', NODE]);
        assert.equal(failed.code, 1, printed(failed));
        assert.match(`${failed.stdout}\n${failed.stderr}`, /VAULT_TOKEN/, 'the error names the variable');
        assertNotPrinted(failed, fromVault, 'the failed deploy');
        assert.equal(await onNode(NODE, `ls /srv/${SITE}/releases`), releasesBefore, 'no release was made');
        assert.equal(await variable(address, 'VAULT_TOKEN'), fromVault, 'the live site keeps its value');
        project.editConfig((doc) => doc.delete('secrets'));
      });
    });
  });
});
