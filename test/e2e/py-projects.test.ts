/**
 * Issue 17, Python projects as they are today, on one real sandbox (`py-a`, from the set-up
 * snapshot): a pyproject-only Flask project deploys and serves, its dependency satisfied by
 * Debian's python3-flask (no requirements.txt, nothing from a package index); the Django example
 * deploys, a release whose migration removes a field is refused before anything migrates (the
 * operation listed, the column and the live release as they were), and
 * `--allow-destructive-migrations` lets that release through.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseDocument } from 'yaml';
import { REPO_ROOT, runCli, sandboxSkip, withPreparedSandbox, type CliResult } from './harness.ts';
import { get, onNode, printed, releaseIdIn, setupRecipe } from './safe-helpers.ts';

const NODE = 'py-a';

function projectDir(t: TestContext, files: Record<string, string>, from?: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kw-py-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  if (from) cpSync(path.join(REPO_ROOT, 'examples', from), dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

const cli = (dir: string, args: readonly string[]): Promise<CliResult> => runCli(args, { cwd: dir, timeoutMs: 15 * 60_000 });

async function deployed(dir: string, args: readonly string[] = []): Promise<string> {
  const r = await cli(dir, ['deploy', NODE, ...args]);
  assert.equal(r.code, 0, printed(r));
  return releaseIdIn(r.stdout + r.stderr)!;
}

async function liveRelease(dir: string): Promise<string | undefined> {
  const r = await cli(dir, ['releases', NODE, '--json']);
  assert.equal(r.code, 0, printed(r));
  return (JSON.parse(r.stdout) as { id: string; status: string }[]).find((x) => x.status === 'live')?.id;
}

const columns = async () =>
  (await onNode(NODE, `cd / && runuser -u postgres -- psql -d django-site -Atc "select column_name from information_schema.columns where table_name = 'notes_note' order by 1"`)).trim().split('\n');

describe('Python projects: pyproject.toml and safe Django migrations', { skip: sandboxSkip() }, () => {
  it('a pyproject-only Flask project; a destructive migration refused, then allowed', { timeout: 40 * 60_000 }, async (t) => {
    await withPreparedSandbox(t, NODE, setupRecipe(), async (sandbox) => {
      const address = sandbox.address;
      // From the snapshot: start the node's services, as after a reboot.
      const setup = await runCli(['setup-node', NODE], { cwd: tmpdir(), timeoutMs: 30 * 60_000 });
      assert.equal(setup.code, 0, printed(setup));

      await t.test('a project with only pyproject.toml deploys; Debian satisfies its dependency', async () => {
        const dir = projectDir(t, {
          'app.py': 'from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route("/")\ndef index():\n    return "pyproject flask\\n"\n',
          'pyproject.toml': '[project]\nname = "pyflask"\nversion = "0.1"\ndependencies = [\n  "flask>=2",  # python3-flask\n]\n',
          'kraftwerk.yaml': 'domain: pyflask.test\npackage: pyflask\nwsgi: app:app\napt: [python3-flask]\n',
        });
        const r = await cli(dir, ['deploy', NODE]);
        assert.equal(r.code, 0, printed(r));
        assert.match(r.stdout + r.stderr, /dependencies: 1 in pyproject\.toml/, printed(r));
        const page = await get(address, '/', 10_000, 'pyflask.test');
        assert.equal(page.status, 200, JSON.stringify(page));
        assert.equal(page.body, 'pyproject flask\n');
      });

      const django = projectDir(t, {}, 'django-site');
      const config = parseDocument(readFileSync(path.join(django, 'kraftwerk.yaml'), 'utf8'));
      config.set('package', 'django-site');
      writeFileSync(path.join(django, 'kraftwerk.yaml'), config.toString());
      const first = await deployed(django);

      // Release B drops Note.created: the release still serving reads it until the switch.
      writeFileSync(
        path.join(django, 'notes/models.py'),
        'from django.db import models\n\n\nclass Note(models.Model):\n    text = models.CharField(max_length=200)\n\n    class Meta:\n        ordering = ["-id"]\n\n    def __str__(self):\n        return self.text\n',
      );
      writeFileSync(
        path.join(django, 'notes/migrations/0002_remove_note_created.py'),
        'from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    dependencies = [("notes", "0001_initial")]\n    operations = [\n        migrations.AlterModelOptions(name="note", options={"ordering": ["-id"]}),\n        migrations.RemoveField(model_name="note", name="created"),\n    ]\n',
      );

      await t.test('a migration that removes a field is refused before it runs; the live site is unchanged', async () => {
        const r = await cli(django, ['deploy', NODE]);
        assert.equal(r.code, 1, printed(r));
        const out = r.stdout + r.stderr;
        assert.match(out, /notes\.0002_remove_note_created: RemoveField \(Remove field created from note\)/, printed(r));
        assert.match(out, /--allow-destructive-migrations/, printed(r));
        assert.ok(!/Change Meta options/.test(out), 'only the destructive operation is listed');
        assert.equal(await liveRelease(django), first, 'the release that served before still does');
        assert.ok((await columns()).includes('created'), 'the column is still there');
        const page = await get(address, '/', 10_000, 'django-site.test');
        assert.equal(page.status, 200, JSON.stringify(page));
      });

      await t.test('--allow-destructive-migrations lets the release through', async () => {
        const b = await deployed(django, ['--allow-destructive-migrations']);
        assert.equal(await liveRelease(django), b);
        assert.ok(!(await columns()).includes('created'), 'the migration ran');
        const page = await get(address, '/', 10_000, 'django-site.test');
        assert.equal(page.status, 200, JSON.stringify(page));
        assert.match(page.body ?? '', /<h1>Notes<\/h1>/);
      });
    });
  });
});
