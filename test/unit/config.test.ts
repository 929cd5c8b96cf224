import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { didYouMean, editDistance } from '../../core/config/errors.ts';
import { configJsonSchema, schemaCommand } from '../../core/config/jsonschema.ts';
import { findConfigFile, loadConfig, siteNameFromFolder } from '../../core/config/load.ts';
import { builtins, configSchema } from '../helpers/config.ts';
import { settingsOf } from '../../core/config/settings.ts';
import { CRON_SETTINGS, cronScheduleProblem } from '../../plugins/cron/settings.ts';
import { NGINX_SETTINGS } from '../../plugins/nginx/settings.ts';
import { TLS_SETTINGS } from '../../plugins/tls/settings.ts';
import { ConfigError, KraftwerkError, UsageError } from '../../core/errors.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = path.join(repo, 'test/fixtures/config');
const knownServices = ['files', 'postgres', 'redis'];

const scratch = mkdtempSync(path.join(tmpdir(), 'kw-config-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh folder under the scratch folder, with the given files. */
function project(name: string, files: Record<string, string>): string {
  const dir = path.join(mkdtempSync(path.join(scratch, 'p-')), name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function loadFixture(name: string, extra?: { localPluginNames?: string[] }) {
  return loadConfig({ plugins: builtins, cwd: path.join(fixtures, name), knownServices, ...extra });
}

/** The ConfigError a load fails with; also checks the exit code a user sees. */
async function configError(load: Promise<unknown>): Promise<ConfigError> {
  try {
    await load;
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  return assert.fail('the config loaded, but it should have been refused');
}

describe('loading a valid config', () => {
  test('a kraftwerk.yaml using every key loads with its values', async () => {
    const { config, filepath, sourceDir, siteName } = await loadFixture('good');
    assert.equal(filepath, path.join(fixtures, 'good/kraftwerk.yaml'));
    assert.equal(sourceDir, path.join(fixtures, 'good'));
    assert.equal(siteName, 'shop');
    assert.deepEqual(config.domain, ['shop.example.com', 'shop.example.org']);
    assert.deepEqual(config.nodes.production, {
      host: 'web1.example.com',
      user: 'admin',
      port: 2222,
      identity_file: '~/.ssh/id_ed25519',
      sudo: true,
    });
    assert.deepEqual(config.nodes.everywhere, ['production', 'stage']);
    assert.deepEqual(config.healthcheck, { path: '/health', status: [200, 204], timeout: 5, retries: 3 });
    assert.equal(settingsOf({ settings: config }, CRON_SETTINGS).cron[0]?.schedule, '30 3 * * mon-fri');
    assert.deepEqual(settingsOf({ settings: config }, NGINX_SETTINGS).static, { path: 'static', url: '/static/', expires: '7d' });
    assert.deepEqual(settingsOf({ settings: config }, TLS_SETTINGS).tls, { email: 'admin@example.com', provider: 'letsencrypt', staging: true, hsts: 31536000 });
  });

  test('the good fixture uses every key of the schema', () => {
    const text = readFileSync(path.join(fixtures, 'good/kraftwerk.yaml'), 'utf8');
    for (const key of Object.keys(configSchema.shape).filter((k) => k !== '$schema')) {
      assert.match(text, new RegExp(`^${key}:`, 'm'), `${key} is missing from the good fixture`);
    }
  });

  test('defaults are applied to a config with only a domain', async () => {
    const { config, siteName, sourceDir } = await loadFixture('minimal');
    assert.equal(siteName, 'minimal');
    assert.equal(sourceDir, path.join(fixtures, 'minimal'));
    assert.deepEqual(config, {
      domain: 'minimal.example.com',
      aliases: [],
      services: [],
      workers: 2,
      environ: {},
      secrets: {},
      src: '.',
      nodes: {},
      apt: [],
      processes: {},
      cron: [],
      release: [],
      healthcheck: { path: '/', timeout: 10, retries: 5 },
      timeouts: { release_commands: '30m', install: '30m', healthcheck: '5m', silence: '10m' },
      keep_releases: 5,
      exclude: [],
      plugins: [],
      tls: false,
      migrations: { check: true },
    });
  });

  test('the nearest config upward from the working folder wins', async () => {
    const root = project('outer', {
      'kraftwerk.yaml': 'domain: outer.example.com\nworkers: nope\n',
      'site/kraftwerk.yml': 'domain: inner.example.com\n',
      'site/app/static/css/.keep': '',
    });
    const deep = path.join(root, 'site/app/static/css');
    const loaded = await loadConfig({ plugins: builtins, cwd: deep, knownServices });
    assert.equal(loaded.filepath, path.join(root, 'site/kraftwerk.yml'));
    assert.equal(loaded.config.domain, 'inner.example.com');
    assert.equal(loaded.siteName, 'site');
    assert.equal(await findConfigFile(deep), path.join(root, 'site/kraftwerk.yml'));
  });

  test('kraftwerk.yaml comes before kraftwerk.config.ts in the same folder', async () => {
    const dir = project('both', {
      'kraftwerk.yaml': 'domain: yaml.example.com\n',
      'kraftwerk.config.ts': 'throw new Error("must not be loaded")\n',
    });
    assert.equal((await loadConfig({ plugins: builtins, cwd: dir, knownServices })).config.domain, 'yaml.example.com');
  });

  test('--config names the file; no search then', async () => {
    const dir = project('explicit', { 'deploy/stage.yaml': 'domain: stage.example.com\nsrc: ..\n' });
    const loaded = await loadConfig({ plugins: builtins, cwd: dir, configPath: 'deploy/stage.yaml', knownServices });
    assert.equal(loaded.config.domain, 'stage.example.com');
    assert.equal(loaded.sourceDir, dir);
    // The site is named after the folder of the config file, which is not always the project: hence `package:`.
    assert.equal(loaded.siteName, 'deploy');
    await assert.rejects(loadConfig({ plugins: builtins, cwd: dir, configPath: 'nope.yaml', knownServices }), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /nope\.yaml does not exist/);
      return true;
    });
  });

  test('services may name project-local plugins', async () => {
    const dir = project('local', { 'kraftwerk.yaml': 'domain: a.example.com\nservices: [postgres, newrelic]\n' });
    const loaded = await loadConfig({ plugins: builtins, cwd: dir, knownServices, localPluginNames: ['newrelic'] });
    assert.deepEqual(loaded.config.services, ['postgres', 'newrelic']);
  });

  test('YAML anchors and merge keys work', async () => {
    const dir = project('anchors', {
      'kraftwerk.yaml': [
        'domain: a.example.com',
        'nodes:',
        '  production: &server',
        '    host: web1.example.com',
        '    port: 2222',
        '  stage:',
        '    <<: *server',
        '    host: web2.example.com',
        '',
      ].join('\n'),
    });
    const { config } = await loadConfig({ plugins: builtins, cwd: dir, knownServices });
    assert.deepEqual(config.nodes.stage, { host: 'web2.example.com', port: 2222 });
  });
});

describe('site name', () => {
  test('the folder name, lower-cased, other characters made dashes', () => {
    assert.equal(siteNameFromFolder('My Shop.v2'), 'my-shop-v2');
    assert.equal(siteNameFromFolder('shop_2'), 'shop_2');
    assert.equal(siteNameFromFolder('--Shop--'), 'shop');
    assert.equal(siteNameFromFolder('2shop'), undefined);
    assert.equal(siteNameFromFolder('ÜÜ'), undefined);
    assert.equal(siteNameFromFolder('a'.repeat(29)), undefined);
  });

  test('a folder name that cannot be a site name asks for `package:`', async () => {
    const dir = project('2024 Site', { 'kraftwerk.yaml': 'domain: a.example.com\n' });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.match(error.message, /^kraftwerk\.yaml: package: the project folder name "2024 Site" cannot be made into a site name/);
    assert.match(error.message, /set `package:`/);
    writeFileSync(path.join(dir, 'kraftwerk.yaml'), 'domain: a.example.com\npackage: site2024\n');
    assert.equal((await loadConfig({ plugins: builtins, cwd: dir, knownServices })).siteName, 'site2024');
  });

  test('an invalid `package:` names the key and its line', async () => {
    const dir = project('pkg', { 'kraftwerk.yaml': 'domain: a.example.com\npackage: My Site\n' });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.match(error.message, /^kraftwerk\.yaml:2: package: expected a lower-case name.*found the text "My Site"$/);
  });
});

describe('a bad kraftwerk.yaml: one message per problem, with file, line and key', () => {
  test('a misspelled key suggests the right one and lists the known keys', async () => {
    const error = await configError(loadFixture('misspelled-key'));
    assert.match(error.message, /^kraftwerk\.yaml:2: wokers: unknown key `wokers` \(did you mean `workers`\?\); known keys: .*\bdomain\b.*\bworkers\b/);
    assert.equal(error.message.split('\n').length, 1);
    assert.deepEqual(error.problems.map((p) => [p.key, p.line]), [['wokers', 2]]);
  });

  test('an unknown service lists the known ones', async () => {
    const error = await configError(loadFixture('unknown-service'));
    assert.equal(
      error.message,
      'kraftwerk.yaml:4: services[1]: unknown service `postgress` (did you mean `postgres`?); known services: files, postgres, redis',
    );
  });

  test('workers: 2.5 is not an integer', async () => {
    const error = await configError(loadFixture('fractional-workers'));
    assert.equal(error.message, 'kraftwerk.yaml:3: workers: expected an integer, found 2.5 (setting of plugin uwsgi)');
  });

  test('a domain with a space names the key, what is expected and what was found', async () => {
    const error = await configError(loadFixture('domain-with-space'));
    assert.match(error.message, /^kraftwerk\.yaml:2: domain: expected a host name such as www\.example\.com .*no spaces.*, found the text "my site\.com"$/);
  });

  test('a node of the wrong type', async () => {
    const error = await configError(loadFixture('wrong-node-type'));
    assert.match(error.message, /^kraftwerk\.yaml:4: nodes\.production: expected a host name, a mapping \{host, user, port, identity_file, sudo, roles, private_host\} or a list of node names \(a group\), found 42$/);
  });

  test('a cron schedule with four fields', async () => {
    const error = await configError(loadFixture('bad-cron'));
    assert.match(error.message, /^kraftwerk\.yaml:4: cron\[0\]\.schedule: expected a cron schedule: five fields.*found the text "\*\/5 \* \* \*": it has 4 fields, not 5 \(setting of plugin cron\)$/);
  });

  test('a YAML syntax error gives line and column', async () => {
    const error = await configError(loadFixture('yaml-syntax'));
    assert.match(error.message, /^kraftwerk\.yaml:\d+:\d+: YAML syntax error: /);
    assert.ok(error.problems.every((p) => p.line && p.column));
    assert.ok(error.problems.some((p) => p.line === 2 || p.line === 3), JSON.stringify(error.problems));
    assert.doesNotMatch(error.message, /\n\s*\n/, 'no code frames: one line per problem');
  });

  test('a duplicate key is named', async () => {
    const dir = project('dup', { 'kraftwerk.yaml': 'domain: a.example.com\nworkers: 2\nworkers: 3\n' });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.equal(error.message, 'kraftwerk.yaml:3:1: YAML syntax error: Map keys must be unique (`workers` appears twice)');
  });

  test('every problem is reported, each on its own line, in file order', async () => {
    const error = await configError(loadFixture('many-problems'));
    const lines = error.message.split('\n');
    assert.deepEqual(
      error.problems.map((p) => [p.line, p.key]),
      [
        [undefined, 'domain'],
        [1, 'domian'],
        [2, 'workers'],
        [6, 'nodes.production.prot'],
        [7, 'services[0]'],
      ],
    );
    assert.equal(lines.length, 5);
    // A missing key has no line of its own.
    assert.equal(lines[0], 'kraftwerk.yaml: domain: missing; expected a host name such as www.example.com, or a list of them');
    assert.match(lines[1]!, /^kraftwerk\.yaml:1: domian: unknown key `domian` \(did you mean `domain`\?\)/);
    assert.equal(lines[2], 'kraftwerk.yaml:2: workers: expected a number, found the text "two" (setting of plugin uwsgi)');
    assert.match(lines[3]!, /^kraftwerk\.yaml:6: nodes\.production\.prot: unknown key `prot` \(did you mean `port`\?\); known keys: host, user, port, identity_file, sudo, roles, private_host$/);
    assert.match(lines[4]!, /^kraftwerk\.yaml:7: services\[0\]: unknown service `memcached`; known services: files, postgres, redis$/);
  });

  test('an empty file says what to write', async () => {
    const error = await configError(loadFixture('empty'));
    assert.equal(error.message, 'kraftwerk.yaml: the file has no settings');
    assert.match(error.hint ?? '', /kraftwerk init/);
  });

  test('a top level that is not a mapping', async () => {
    const dir = project('list', { 'kraftwerk.yaml': '- domain: a.example.com\n' });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.equal(error.message, 'kraftwerk.yaml:1: expected a mapping, found a list of 1 item');
  });

  test('plugin files must exist, and YAML lists files, not objects', async () => {
    const dir = project('plugins', { 'kraftwerk.yaml': 'domain: a.example.com\nplugins:\n  - ./missing.ts\n  - name: x\n' });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    const lines = error.message.split('\n');
    assert.match(lines[0]!, /^kraftwerk\.yaml:3: plugins\[0\]: plugin file .*missing\.ts does not exist/);
    assert.match(lines[1]!, /^kraftwerk\.yaml:4: plugins\[1\]: .*plugin objects are only possible in kraftwerk\.config\.ts/);
  });

  test('src must be a folder', async () => {
    const dir = project('src', { 'kraftwerk.yaml': 'domain: a.example.com\n\nsrc: app\n' });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.match(error.message, /^kraftwerk\.yaml:3: src: folder .*\/app does not exist$/);
  });

  test('no config anywhere points to kraftwerk init', async () => {
    const dir = project('nothing', { 'README': '' });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.match(error.message, /no kraftwerk\.yaml, kraftwerk\.yml, kraftwerk\.config\.ts, kraftwerk\.config\.js in this folder or any parent folder/);
    assert.match(error.hint ?? '', /kraftwerk init/);
    assert.equal(await findConfigFile(dir), undefined);
  });

  test('nested values: record keys, environment values, unions', async () => {
    const dir = project('nested', {
      'kraftwerk.yaml': [
        'domain: [a.example.com, "b example.com"]',
        'environ:',
        '  BAD-NAME: 1',
        '  NESTED: {a: 1}',
        'healthcheck: true',
        'tls:',
        '  provider: zerossl',
        'nodes:',
        '  stage: {host: s.example.com, port: 70000}',
        '',
      ].join('\n'),
    });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.deepEqual(error.message.split('\n'), [
      'kraftwerk.yaml:1: domain[1]: expected a host name such as www.example.com (letters, digits, dots and dashes; no spaces, no scheme, no path), found the text "b example.com"',
      'kraftwerk.yaml:3: environ.BAD-NAME: the name "BAD-NAME" is not allowed here: expected an environment variable name (letters, digits and _, not starting with a digit)',
      'kraftwerk.yaml:4: environ.NESTED: expected a string, a number or true/false, found a mapping',
      'kraftwerk.yaml:5: healthcheck: expected false, or a mapping {path, status, timeout, retries}, found true',
      'kraftwerk.yaml:7: tls.provider: expected "letsencrypt" or "self-signed", found the text "zerossl" (setting of plugin tls)',
      'kraftwerk.yaml:9: nodes.stage.port: expected at most 65535, found 70000',
    ]);
  });
});

describe('kraftwerk.config.ts', () => {
  test('defineConfig from "kraftwerk", with an imported project-local plugin', async () => {
    const { config, siteName, filepath } = await loadFixture('ts-project');
    assert.equal(filepath, path.join(fixtures, 'ts-project/kraftwerk.config.ts'));
    assert.equal(siteName, 'ts-project');
    assert.equal(config.domain, 'ts.example.com');
    assert.equal(config.workers, 3);
    assert.deepEqual(config.nodes.production, { host: 'web1.example.com', port: 2222 });
    const [object, file] = config.plugins;
    assert.equal(typeof object === 'object' && object.name, 'revision');
    assert.equal(file, './deploy/revision.ts');
    assert.deepEqual(config.aliases, [], 'defaults apply to TS configs too');
  });

  test('a bad TS config names file and key (no line numbers)', async () => {
    const error = await configError(loadFixture('bad-ts-project'));
    assert.deepEqual(error.message.split('\n'), [
      'kraftwerk.config.ts: workers: expected an integer, found 1.5 (setting of plugin uwsgi)',
      'kraftwerk.config.ts: colour: unknown key `colour`; known keys: ' + Object.keys(configSchema.shape).join(', '),
    ]);
  });

  test('a TS config that throws while loading is a config error naming the file', async () => {
    const dir = project('throws', { 'kraftwerk.config.ts': 'throw new Error("no database password");\nexport default {};\n' });
    const error = await configError(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.match(error.message, /^kraftwerk\.config\.ts: cannot load the config: no database password/);
  });

  test('kraftwerk.config.ts.example loads and validates, and shows every key', async () => {
    const example = path.join(repo, 'kraftwerk.config.ts.example');
    const dir = project('example-shop', {});
    cpSync(example, path.join(dir, 'kraftwerk.config.ts'));
    cpSync(path.join(repo, 'examples/plugins/revision.ts'), path.join(dir, 'deploy/revision.ts'));
    const { config, siteName } = await loadConfig({ plugins: builtins, cwd: dir, knownServices });
    assert.equal(siteName, 'shop');
    assert.equal(config.plugins.length, 1);
    const [plugin] = config.plugins;
    assert.ok(plugin && typeof plugin === 'object' && plugin.name === 'revision' && typeof plugin.apply === 'function');
    const text = readFileSync(example, 'utf8');
    assert.match(text, /^import \{ defineConfig \} from 'kraftwerk';$/m);
    for (const key of Object.keys(configSchema.shape).filter((k) => k !== '$schema')) {
      assert.match(text, new RegExp(`^  // .+\\n  ${key}: `, 'm'), `${key} is missing from the example, or has no comment`);
    }
  });
});

describe('JSON Schema', () => {
  test('schema/kraftwerk.schema.json is up to date', () => {
    const committed = readFileSync(path.join(repo, 'schema/kraftwerk.schema.json'), 'utf8');
    assert.equal(
      committed,
      schemaCommand(configSchema.schema),
      'regenerate it: npm run build && node bin/kraftwerk.js schema > schema/kraftwerk.schema.json',
    );
  });

  test('describes every key, refuses unknown ones, and lists plugin files as strings', () => {
    const schema = configJsonSchema(configSchema.schema) as {
      properties: Record<string, { description?: string; items?: unknown }>;
      required: string[];
      additionalProperties: boolean;
    };
    assert.deepEqual(Object.keys(schema.properties), Object.keys(configSchema.shape));
    assert.deepEqual(schema.required, ['domain']);
    assert.equal(schema.additionalProperties, false);
    for (const [key, prop] of Object.entries(schema.properties)) assert.ok(prop.description, `${key} has no description`);
    assert.deepEqual(schema.properties.plugins?.items, { type: 'string', minLength: 1 });
  });
});

describe('helpers', () => {
  test('edit distance counts a swap of neighbours as one edit', () => {
    assert.equal(editDistance('domian', 'domain'), 1);
    assert.equal(editDistance('wokers', 'workers'), 1);
    assert.equal(editDistance('', 'abc'), 3);
  });

  test('did you mean: close names only', () => {
    assert.equal(didYouMean('domian', ['domain', 'aliases']), 'domain');
    assert.equal(didYouMean('Workers', ['workers']), 'workers');
    assert.equal(didYouMean('keep-releases', ['keep_releases']), 'keep_releases');
    assert.equal(didYouMean('memcached', ['files', 'postgres', 'redis']), undefined);
  });

  test('cron schedules', () => {
    for (const ok of ['*/5 * * * *', '30 2 * * mon-fri', '0 0 1,15 * *', '@daily', '0 4 * jan-mar 0', '0 0 * * 7']) {
      assert.equal(cronScheduleProblem(ok), undefined, ok);
    }
    assert.equal(cronScheduleProblem('* * * *'), 'it has 4 fields, not 5');
    assert.match(cronScheduleProblem('60 * * * *') ?? '', /minute field "60"/);
    assert.match(cronScheduleProblem('* 24 * * *') ?? '', /hour field "24"/);
    assert.match(cronScheduleProblem('* * * * funday') ?? '', /day of week field/);
    assert.match(cronScheduleProblem('* * * * * ; rm -rf /') ?? '', /fields, not 5/);
    assert.match(cronScheduleProblem('*/0 * * * *') ?? '', /minute field/);
  });

  test('ConfigError keeps the exit code and is a KraftwerkError', () => {
    const error = ConfigError.fromProblems('kraftwerk.yaml', [
      { key: 'a', problem: 'x', line: 1 },
      { key: '', problem: 'y', line: 2, column: 3 },
    ]);
    assert.ok(error instanceof KraftwerkError);
    assert.equal(error.exitCode, 2);
    assert.equal(error.message, 'kraftwerk.yaml:1: a: x\nkraftwerk.yaml:2:3: y');
  });
});
