import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parse } from 'yaml';
import { guessProject, initCommand, initProject, keyExamples, renderInitConfig } from '../../core/cli/actions/init.ts';
import { loadConfig } from '../../core/config/load.ts';
import { builtins, builtinTable, configSchema } from '../helpers/config.ts';
import { UsageError } from '../../core/errors.ts';

const knownServices = ['files', 'postgres', 'redis'];
const scratch = mkdtempSync(path.join(tmpdir(), 'kw-init-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function project(name: string, files: Record<string, string>): string {
  const dir = path.join(mkdtempSync(path.join(scratch, 'p-')), name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

const DJANGO_WSGI = [
  'import os',
  'from django.core.wsgi import get_wsgi_application',
  "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')",
  'application = get_wsgi_application()',
  '',
].join('\n');

/** The active (uncommented) keys of a kraftwerk.yaml. */
function activeKeys(text: string): string[] {
  return Object.keys(parse(text) ?? {});
}

/** kraftwerk.yaml with every commented-out example turned on. */
function uncommentExamples(text: string): string {
  const keys = new Set(Object.keys(configSchema.shape));
  const out: string[] = [];
  let inExample = false;
  for (const line of text.split('\n')) {
    const key = /^# ([a-z_]+):/.exec(line)?.[1];
    if (key && keys.has(key)) inExample = true;
    else if (!/^# {2}/.test(line)) inExample = false;
    out.push(inExample ? line.slice(2) : line);
  }
  return out.join('\n');
}

describe('kraftwerk init', () => {
  test('a Django project: wsgi module, services from requirements, a file that loads', async () => {
    const dir = project('shop', {
      'manage.py': '',
      'shop/__init__.py': '',
      'shop/settings.py': "MEDIA_ROOT = BASE_DIR / 'media'\n",
      'shop/wsgi.py': DJANGO_WSGI,
      'requirements.txt': 'Django>=5.0\npsycopg2-binary==2.9.9  # database\n-r requirements/cache.txt\n',
      'requirements/cache.txt': 'django-redis\n',
      '.venv/lib/wsgi.py': 'application = None\n',
    });
    const { file, guess } = await initProject({ cwd: dir, builtins: builtinTable });
    assert.equal(file, path.join(dir, 'kraftwerk.yaml'));
    assert.deepEqual(guess.wsgi, { value: 'shop.wsgi', from: 'shop/wsgi.py' });
    assert.deepEqual(
      guess.services.map((s) => s.name),
      ['files', 'postgres', 'redis'],
    );
    const text = readFileSync(file, 'utf8');
    assert.deepEqual(activeKeys(text), ['domain', 'services', 'wsgi']);
    assert.match(text, /^domain: shop\.example\.com$/m);
    assert.match(text, /^wsgi: shop\.wsgi$/m);
    assert.match(text, /# \(guessed: files from MEDIA_ROOT in shop\/settings\.py; postgres from psycopg2-binary in requirements\.txt; redis from django-redis in requirements\.txt\)/);

    const { config, siteName } = await loadConfig({ plugins: builtins, cwd: dir, knownServices });
    assert.equal(siteName, 'shop');
    assert.equal(config.domain, 'shop.example.com');
    assert.equal(config.wsgi, 'shop.wsgi');
    assert.deepEqual(config.services, ['files', 'postgres', 'redis']);
  });

  test('every other key is commented out, after a one-line explanation', async () => {
    const dir = project('shop', { 'shop/wsgi.py': DJANGO_WSGI });
    const { file } = await initProject({ cwd: dir, builtins: builtinTable });
    const lines = readFileSync(file, 'utf8').split('\n');
    for (const key of Object.keys(configSchema.shape).filter((k) => k !== '$schema')) {
      const at = lines.findIndex((l) => l.startsWith(`# ${key}:`) || l.startsWith(`${key}:`));
      assert.ok(at > 0, `${key} is missing`);
      // The explanation sits right above, or above the "(guessed …)" note of an active key.
      const explanation = lines[at - 1]!.startsWith('# (') ? lines[at - 2]! : lines[at - 1]!;
      assert.match(explanation, /^# [A-Z].*\.$/, `${key} has no explanation: ${explanation}`);
    }
  });

  test('the commented examples are valid too: uncommented, the file still loads', async () => {
    const dir = project('shop', { 'shop/wsgi.py': DJANGO_WSGI, 'deploy/revision.ts': 'export default { name: "revision", apply() {} };\n' });
    const { file } = await initProject({ cwd: dir, builtins: builtinTable });
    const all = uncommentExamples(readFileSync(file, 'utf8'));
    // Every key of the schema (core's and the built-in plugins'), once; the file keeps its own reading order.
    assert.deepEqual([...activeKeys(all)].sort(), Object.keys(configSchema.shape).filter((k) => k !== '$schema').sort());
    writeFileSync(file, all);
    const { config } = await loadConfig({ plugins: builtins, cwd: dir, knownServices });
    assert.equal(config.workers, 4);
    assert.deepEqual(config.release, ['python manage.py migrate --noinput', 'python manage.py collectstatic --noinput']);
  });

  test('Flask: app = Flask(...) in app.py is app:app', async () => {
    const dir = project('blog', {
      'app.py': 'from flask import Flask\n\napp = Flask(__name__)\n',
      'requirements.txt': 'flask\nredis==5.0\n',
    });
    const { guess, file } = await initProject({ cwd: dir, builtins: builtinTable });
    assert.deepEqual(guess.wsgi, { value: 'app:app', from: 'app.py' });
    assert.deepEqual(guess.services.map((s) => s.name), ['redis']);
    const { config } = await loadConfig({ plugins: builtins, cwd: dir, knownServices });
    assert.equal(config.wsgi, 'app:app');
    assert.match(readFileSync(file, 'utf8'), /^# release:\n# {3}- flask db upgrade$/m);
  });

  test('Flask: in wsgi.py or in a package', () => {
    const inWsgi = project('a', { 'wsgi.py': 'from flask import Flask\nserver = Flask("a")\n' });
    assert.deepEqual(guessProject(inWsgi).wsgi, { value: 'wsgi:server', from: 'wsgi.py' });
    const inPackage = project('b', { 'blog/__init__.py': 'from flask import Flask\napp = Flask(__name__)\n' });
    assert.deepEqual(guessProject(inPackage).wsgi, { value: 'blog:app', from: 'blog/__init__.py' });
  });

  test('no WSGI app found: the file says so, and still loads', async () => {
    const dir = project('mystery', { 'main.py': 'print("hi")\n' });
    const { guess, file } = await initProject({ cwd: dir, builtins: builtinTable });
    assert.equal(guess.wsgi, undefined);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /The WSGI application was not found: set `wsgi:`/);
    assert.match(text, /^# wsgi: mystery\.wsgi$/m);
    assert.deepEqual(activeKeys(text), ['domain']);
    assert.equal((await loadConfig({ plugins: builtins, cwd: dir, knownServices })).config.domain, 'mystery.example.com');
  });

  test('services the CLI does not know are not written', () => {
    const dir = project('shop', { 'requirements.txt': 'psycopg[binary]\nredis\n' });
    assert.deepEqual(guessProject(dir, builtins.filter((p) => ['python', 'postgres'].includes(p.name))).services.map((s) => s.name), ['postgres']);
  });

  test('a pyproject-only project: its dependencies give the services too', () => {
    const dir = project('shop', { 'app.py': 'app = Flask(__name__)\n', 'pyproject.toml': '[project]\nname = "shop"\ndependencies = ["flask", "psycopg2-binary>=2.9"]\n' });
    const guess = guessProject(dir, builtins.filter((p) => ['python', 'postgres', 'redis'].includes(p.name)));
    assert.deepEqual(guess.wsgi, { value: 'app:app', from: 'app.py' });
    assert.deepEqual(guess.services, [{ name: 'postgres', from: 'psycopg2-binary in requirements.txt' }]);
  });

  test('a folder name that cannot be a site name gets `package:` to fill in', async () => {
    const dir = project('2024', { 'app.py': 'app = Flask(__name__)\n' });
    const { file } = await initProject({ cwd: dir, builtins: builtinTable });
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^package: site$/m);
    assert.match(text, /^domain: site\.example\.com$/m);
    assert.equal((await loadConfig({ plugins: builtins, cwd: dir, knownServices })).siteName, 'site');
  });

  test('a site name with _ gives a valid placeholder domain', () => {
    const text = renderInitConfig({ siteName: 'my_shop', siteNameFromFolder: true, services: [] }, configSchema.shape);
    assert.match(text, /^domain: my-shop\.example\.com$/m);
  });

  test('an existing config is not overwritten without --force', async () => {
    const dir = project('shop', { 'kraftwerk.config.ts': '// mine\n' });
    await assert.rejects(initProject({ cwd: dir, builtins: builtinTable }), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /kraftwerk\.config\.ts already exists/);
      assert.match(e.hint ?? '', /--force/);
      return true;
    });
    writeFileSync(path.join(dir, 'kraftwerk.yaml'), 'domain: old.example.com\n');
    await assert.rejects(initProject({ cwd: dir, builtins: builtinTable }), UsageError);
    assert.equal(readFileSync(path.join(dir, 'kraftwerk.yaml'), 'utf8'), 'domain: old.example.com\n');
    await initProject({ cwd: dir, force: true, builtins: builtinTable });
    assert.match(readFileSync(path.join(dir, 'kraftwerk.yaml'), 'utf8'), /^domain: shop\.example\.com$/m);
  });

  test('the examples of every key validate against the schema', () => {
    for (const framework of ['django', 'flask', undefined] as const) {
      const examples = keyExamples({ siteName: 'shop', framework }, builtins);
      assert.deepEqual(Object.keys(examples).sort(), Object.keys(configSchema.shape).filter((k) => k !== '$schema').sort());
      const result = configSchema.safeParse(examples);
      assert.ok(result.success, JSON.stringify(result.error?.issues));
    }
  });

  test('initCommand reports what it guessed', async () => {
    const dir = project('shop', { 'shop/wsgi.py': DJANGO_WSGI, 'requirements.txt': 'psycopg2\n' });
    const messages: string[] = [];
    await initCommand({ cwd: dir, builtins: builtinTable, log: { info: (m) => messages.push(`info ${m}`), warn: (m) => messages.push(`warn ${m}`) } });
    assert.equal(messages[0], 'info wrote kraftwerk.yaml for site shop');
    assert.ok(messages.includes('info   wsgi: shop.wsgi (from shop/wsgi.py)'), messages.join('\n'));
    assert.ok(messages.includes('info   service postgres (from psycopg2 in requirements.txt)'), messages.join('\n'));
  });
});
