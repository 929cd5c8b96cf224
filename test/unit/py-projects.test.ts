// Issue 17, Python projects as they are today: pyproject.toml's dependencies, `requirements:`
// checked before a node is touched, and the Django plan read before migrations run.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseToml, pyprojectDependencies } from '../../plugins/python/pyproject.ts';
import { type Dependencies, dependencyNames, dependencyText, readDependencies } from '../../plugins/python/requirements.ts';
import { venvHash } from '../../plugins/python/venv.ts';
import { alteredFields, describeDestructive, destructiveOperations, migratePrefix, notNullWithoutDefault, parsePlan } from '../../plugins/django/plan.ts';

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kw-pyp-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const PYPROJECT = `# A PEP 621 project
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "hello"
version = "1.0"
description = """A site,
with "quotes" inside"""
authors = [{ name = "Ada", email = "ada@example.com" }]
dependencies = [
  "flask>=2.2",   # the web framework
  'psycopg2-binary ; python_version >= "3.8"',
  "requests[socks]",
]

[project.optional-dependencies]
dev = ["pytest"]

[tool.black]
line-length = 100
`;

describe('pyproject.toml', () => {
  it('reads [project].dependencies with comments, both quote styles, and the tables around them', () => {
    assert.deepEqual(pyprojectDependencies(PYPROJECT), ['flask>=2.2', 'psycopg2-binary ; python_version >= "3.8"', 'requests[socks]']);
    const doc = parseToml(PYPROJECT) as { project: { description: string; 'optional-dependencies': { dev: string[] } }; tool: { black: { 'line-length': string } } };
    assert.equal(doc.project.description, 'A site,\nwith "quotes" inside');
    assert.deepEqual(doc.project['optional-dependencies'].dev, ['pytest']);
    assert.equal(doc.tool.black['line-length'], '100');
  });

  it('reads a dotted key and a project without dependencies', () => {
    assert.deepEqual(pyprojectDependencies('project.name = "x"\nproject.dependencies = ["six"]\n'), ['six']);
    assert.deepEqual(pyprojectDependencies('[project]\nname = "x"\n'), []);
  });

  it('refuses what it cannot install from, saying why', () => {
    assert.throws(() => pyprojectDependencies('[tool.poetry.dependencies]\npython = "^3.11"\n'), /no \[project\] table .*Poetry/);
    assert.throws(() => pyprojectDependencies('[project]\ndynamic = ["dependencies"]\n'), /dynamic/);
    assert.throws(() => pyprojectDependencies('[project]\ndependencies = ["--index-url=http://evil/"]\n'), /not a requirement/);
    assert.throws(() => pyprojectDependencies('[project]\ndependencies = ["flask"\n'), /line 3: expected , or \]/);
    assert.throws(() => pyprojectDependencies('[project]\nname = "a"\nname = "b"\n'), /line 3: the key name is defined twice/);
  });
});

describe('requirements: which file, checked before a deploy', () => {
  const cfg = '/p/kraftwerk.yaml';

  it('takes requirements.txt, else pyproject.toml; the venv is keyed by the dependency list only', () => {
    assert.equal(readDependencies(project({ 'requirements.txt': 'six\n', 'pyproject.toml': PYPROJECT }), undefined, cfg).file, 'requirements.txt');
    const deps = readDependencies(project({ 'pyproject.toml': PYPROJECT }), undefined, cfg);
    assert.deepEqual(deps, { kind: 'pyproject', file: 'pyproject.toml', specs: pyprojectDependencies(PYPROJECT) });
    // A change of the version or a tool's settings keeps the venv; a change of a dependency does not.
    const other = readDependencies(project({ 'pyproject.toml': PYPROJECT.replace('version = "1.0"', 'version = "2.0"').replace('100', '88') }), undefined, cfg);
    const hash = (d: Dependencies) => venvHash({ requirements: dependencyText(d), pythonVersion: '3.11.2', wheelhouse: [] });
    assert.equal(hash(other), hash(deps));
    assert.notEqual(hash(readDependencies(project({ 'pyproject.toml': PYPROJECT.replace('flask>=2.2', 'flask>=3') }), undefined, cfg)), hash(deps));
  });

  it('follows `requirements:` to another file', () => {
    const deps = readDependencies(project({ 'requirements/production.txt': 'django\n' }), 'requirements/production.txt', cfg);
    assert.deepEqual(deps, { kind: 'requirements', file: 'requirements/production.txt', text: 'django\n' });
  });

  it('a missing file, a link out of the project or a bad pyproject is exit 2 naming the file and the key', () => {
    const dir = project({ 'app.py': '' });
    assert.throws(() => readDependencies(dir, 'requirements/production.txt', cfg), (e: Error & { exitCode?: number }) => {
      assert.match(e.message, /^requirements: requirements\/production\.txt \(kraftwerk\.yaml\): no such file in /);
      assert.equal(e.exitCode, 2);
      return true;
    });
    assert.throws(() => readDependencies(dir, undefined, cfg), /no requirements\.txt or pyproject\.toml in /);
    symlinkSync('/etc/passwd', path.join(dir, 'out.txt'));
    assert.throws(() => readDependencies(dir, 'out.txt', cfg), /requirements: out\.txt \(kraftwerk\.yaml\): it is a link to \/etc\/passwd, outside the project/);
    writeFileSync(path.join(dir, 'pyproject.toml'), '[tool.poetry]\nname = "x"\n');
    assert.throws(() => readDependencies(dir, undefined, cfg), { message: /^pyproject\.toml: it has no \[project\] table/ });
  });

  it('gives init the names of both kinds of file', () => {
    const dir = project({ 'requirements.txt': '-r base.txt\nRedis==5\n', 'base.txt': 'Django_Extensions\n', 'pyproject.toml': PYPROJECT });
    const read = (f: string) => {
      try {
        return readFileSync(path.join(dir, f), 'utf8');
      } catch {
        return '';
      }
    };
    assert.deepEqual([...dependencyNames(read)].sort(), ['django-extensions', 'flask', 'psycopg2-binary', 'redis', 'requests']);
  });
});

// What Django 3.2 (Debian 12's python3-django) prints; 4.x prints the same.
const PLAN = `Planned operations:
notes.0002_remove_note_body
    Remove field body from note
notes.0003_auto
    Alter field title on note
    Add field when to note
    Rename field when on note to created
shop.0007_delete_cart
    Delete model Cart
    Rename model Order to Purchase
    Raw SQL operation -> UPDATE shop_order SET x = 1
`;

describe('Django migrate --plan', () => {
  it('finds the release command that migrates, and what runs the plan', () => {
    assert.equal(migratePrefix(['python manage.py collectstatic --noinput', 'python manage.py migrate --noinput']), 'python manage.py');
    assert.equal(migratePrefix(['cd src && python3 manage.py migrate']), 'cd src && python3 manage.py');
    assert.equal(migratePrefix(['python manage.py collectstatic && python manage.py migrate']), 'python manage.py');
    assert.equal(migratePrefix(['django-admin migrate --settings=x']), 'django-admin');
    assert.equal(migratePrefix(['flask db upgrade', 'python manage.py migrations_report']), undefined);
  });

  it('parses the plan and lists the operations that break the serving release', () => {
    const plan = parsePlan(`System check identified no issues.\n\u001b[36;1m${PLAN}\u001b[0m`);
    assert.equal(plan.length, 3);
    assert.deepEqual(alteredFields(plan), [{ migration: 'notes.0003_auto', description: 'Alter field title on note' }]);
    const bad = destructiveOperations(plan, new Set(['notes.0003_auto Alter field title on note']));
    assert.deepEqual(bad.map((o) => o.kind), ['RemoveField', 'AlterField to NOT NULL without a default', 'RenameField', 'DeleteModel', 'RenameModel']);
    assert.match(describeDestructive(bad), /^ {2}notes\.0002_remove_note_body: RemoveField \(Remove field body from note\)$/m);
    assert.deepEqual(destructiveOperations(parsePlan('Planned operations:\nnotes.0004\n    Add field x to note\n    Create model Tag\n')), []);
    assert.deepEqual(parsePlan('Planned operations:\n  No planned migration operations.\n'), []);
    // A first deploy: Django's own contenttypes.0002 removes a field of a table this plan creates.
    const first = 'Planned operations:\ncontenttypes.0001_initial\n    Create model ContentType\n    Alter unique_together for contenttype (1 constraint(s))\ncontenttypes.0002_remove_content_type_name\n    Change Meta options on contenttype\n    Alter field name on contenttype\n    Raw Python operation\n    Remove field name from contenttype\n';
    assert.deepEqual(destructiveOperations(parsePlan(first), new Set(['contenttypes.0002_remove_content_type_name Alter field name on contenttype'])), []);
    assert.equal(destructiveOperations(parsePlan('Planned operations:\nnotes.0002_x\n    Undo Add field x to note\n'))[0]?.kind, 'unapplied migration');
    assert.throws(() => parsePlan('Traceback (most recent call last):\n'), /no "Planned operations:"/);
  });

  it('reads from sqlmigrate which AlterField sets NOT NULL without a default', () => {
    const sql = `BEGIN;
--
-- Alter field title on note
--
ALTER TABLE "notes_note" ALTER COLUMN "title" SET NOT NULL;
--
-- Alter field rating on note
--
ALTER TABLE "notes_note" ALTER COLUMN "rating" SET DEFAULT 0;
UPDATE "notes_note" SET "rating" = 0 WHERE "rating" IS NULL; SET CONSTRAINTS ALL IMMEDIATE;
ALTER TABLE "notes_note" ALTER COLUMN "rating" SET NOT NULL;
ALTER TABLE "notes_note" ALTER COLUMN "rating" DROP DEFAULT;
--
-- Alter field body on note
--
ALTER TABLE "notes_note" ALTER COLUMN "body" TYPE text;
COMMIT;
`;
    assert.deepEqual(notNullWithoutDefault(sql), ['Alter field title on note']);
  });
});
