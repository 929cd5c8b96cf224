/**
 * Hostile values in kraftwerk.yaml (issue 12, items 4 and 11): every value
 * that would reach a config file on the node (nginx, uWSGI ini, crontab, run
 * scripts, envdir) is refused by the loader with exit code 2, naming the file,
 * the line and the key, and saying why, before anything touches a server.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../core/config/load.ts';
import { relativePathProblem, reservedSiteName } from '../../core/config/schema.ts';
import { builtins, configSchema } from '../helpers/config.ts';
import { settingsOf } from '../../core/config/settings.ts';
import { CRON_SETTINGS } from '../../plugins/cron/settings.ts';
import { ConfigError } from '../../core/errors.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'kw-hostile-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Loads `yaml` (after a first line `domain: …`) from a project folder named `folder`. */
async function load(yaml: string, folder = 'shop') {
  const dir = path.join(mkdtempSync(path.join(scratch, 'p-')), folder);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'kraftwerk.yaml'), `domain: shop.example.com\n${yaml}`);
  return loadConfig({ plugins: builtins, cwd: dir, knownServices: ['files', 'postgres', 'redis'] });
}

async function refusal(yaml: string, folder?: string): Promise<string> {
  try {
    await load(yaml, folder);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error.message;
  }
  return assert.fail(`the config was accepted:\n${yaml}`);
}

/** [what, yaml, the message line expected: file, line, key and why]. */
const HOSTILE: [string, string, RegExp][] = [
  // static: reaches nginx's alias/location/expires.
  ['static "." publishes the release with its .kraftwerk/env', 'static: .\n', /^kraftwerk\.yaml:2: static: .*found the text "\.": that is the whole release, with its \.kraftwerk\/env/],
  ['static "./" is the release too', 'static: ./\n', /static: .*whole release/],
  ['static ".." climbs out', 'static: ..\n', /static: .*`\.\.` would climb out of the release/],
  ['static "../../etc" climbs out', 'static: ../../etc\n', /static: .*`\.\.` would climb out/],
  ['static "assets/../.." climbs out', 'static: assets/../..\n', /static: .*`\.\.` would climb out/],
  ['static ".kraftwerk"', 'static: .kraftwerk\n', /static: .*"\.kraftwerk" starts with a dot/],
  ['static ".git"', 'static:\n  path: .git\n', /^kraftwerk\.yaml:3: static\.path: .*"\.git" starts with a dot/],
  ['static "a/.env"', 'static: a/.env\n', /static: .*"\.env" starts with a dot/],
  ['static absolute', 'static: /etc\n', /static: .*absolute/],
  ['static with a newline and a brace', 'static: "static/;\\n}\\nlocation / { root /; }"\n', /static: .*a newline|static: .*";"/],
  ['static with a semicolon', 'static: "static;"\n', /static: .*";"/],
  ['static with a quote', `static: 'st"atic'\n`, /static: .*"""/],
  ['static with a space', 'static: "my static"\n', /static: .*a space/],
  ['static with a NUL', 'static: "static\\0"\n', /static: .*NUL/],
  ['static with $()', 'static: "$(id)"\n', /static: .*"\$"/],
  ['static with a backtick', 'static: "`id`"\n', /static: .*"`"/],
  ['static.url without a leading /', 'static:\n  url: static/\n', /^kraftwerk\.yaml:3: static\.url: expected a URL path such as \/static\//],
  ['static.url with a brace', 'static:\n  url: "/s/ { root /; }"\n', /static\.url: expected a URL path/],
  ['static.url with a newline', 'static:\n  url: "/s/\\n}"\n', /static\.url: expected a URL path/],
  ['static.url "/" (would shadow the app)', 'static:\n  url: /\n', /static\.url: .*not \/ alone/],
  ['static.url with ..', 'static:\n  url: /s/../\n', /static\.url: expected a URL path/],
  ['static.url with %', 'static:\n  url: /s%0a/\n', /static\.url: expected a URL path/],
  ['static.expires with a semicolon', 'static:\n  expires: "30d; add_header X y"\n', /^kraftwerk\.yaml:3: static\.expires: expected an nginx time such as 30d/],
  ['static.expires with a newline', 'static:\n  expires: "30d\\n}"\n', /static\.expires: expected an nginx time/],
  ['static.expires with $', 'static:\n  expires: "$x"\n', /static\.expires: expected an nginx time/],
  // environ: envdir files and .kraftwerk/env.
  ['a NUL in an environ value', 'environ:\n  SECRET: "a\\0b"\n', /^kraftwerk\.yaml:3: environ\.SECRET: expected a value without NUL bytes/],
  ['an environ name with a space', 'environ:\n  "A B": x\n', /environ\["A B"\]: the name "A B" is not allowed here: expected an environment variable name/],
  ['an environ name with =', 'environ:\n  "A=B": x\n', /the name "A=B" is not allowed/],
  ['an environ name with a newline', 'environ:\n  "A\\nB": x\n', /is not allowed here: expected an environment variable name/],
  ['an environ name starting with a digit', 'environ:\n  1A: x\n', /the name "1A" is not allowed/],
  ['an environ name with $', 'environ:\n  "$(id)": x\n', /is not allowed here/],
  ['LD_PRELOAD in environ', 'environ:\n  LD_PRELOAD: /srv/x.so\n', /environ\.LD_PRELOAD: .*dynamic loader/],
  ['IFS in environ', 'environ:\n  IFS: "/"\n', /environ\.IFS: .*shell/],
  // names: runit services, log folders, lock files, crontab comments.
  ['a process name with a slash', 'processes:\n  "../x": run\n', /processes\["\.\.\/x"\]: the name "\.\.\/x" is not allowed here: expected a process name/],
  ['a process name with a newline', 'processes:\n  "a\\nb": run\n', /expected a process name/],
  ['a process command with a NUL', 'processes:\n  worker: "celery\\0"\n', /processes\.worker: expected a command without control characters/],
  ['a process command with a newline', 'processes:\n  worker: "celery\\nrm -rf /"\n', /processes\.worker: expected a command on one line/],
  ['a cron name with a dot', 'cron:\n  - name: ../x\n    schedule: "@daily"\n    command: x\n', /cron\[0\]\.name: expected a short name/],
  ['a cron name with a space', 'cron:\n  - name: "a b"\n    schedule: "@daily"\n    command: x\n', /cron\[0\]\.name: expected a short name/],
  ['a cron schedule with a newline', 'cron:\n  - schedule: "* * * * *\\n* * * * * root id"\n    command: x\n', /cron\[0\]\.schedule: .*on one line/],
  ['a cron schedule with five fields across lines', 'cron:\n  - schedule: "*\\n*\\n*\\n*\\n*"\n    command: x\n', /cron\[0\]\.schedule: .*on one line/],
  ['a cron schedule with a sixth field', 'cron:\n  - schedule: "* * * * * root"\n    command: x\n', /cron\[0\]\.schedule: .*6 fields/],
  ['a cron schedule with ;', 'cron:\n  - schedule: "* * * * *;id"\n    command: x\n', /cron\[0\]\.schedule: .*day of week/],
  ['a cron command with a newline', 'cron:\n  - schedule: "@daily"\n    command: "true\\n* * * * * root id"\n', /cron\[0\]\.command: expected a command on one line/],
  ['a cron command with a carriage return', 'cron:\n  - schedule: "@daily"\n    command: "true\\r* * * * * root id"\n', /cron\[0\]\.command: expected a command on one line/],
  ['a backups schedule with a newline', 'backups:\n  schedule: "@daily\\n* * * * * root id"\n', /backups\.schedule: /],
  ['a release command with a NUL', 'release:\n  - "migrate\\0"\n', /release\[0\]: expected a command without control characters/],
  // health check: curl URL and the uwsgi request.
  ['a healthcheck path with a space', 'healthcheck:\n  path: "/h x"\n', /^kraftwerk\.yaml:3: healthcheck\.path: expected a URL path such as \/health/],
  ['a healthcheck path with a newline', 'healthcheck:\n  path: "/h\\nHost: evil"\n', /healthcheck\.path: expected a URL path/],
  ['a healthcheck path with a quote', `healthcheck:\n  path: '/"'\n`, /healthcheck\.path: expected a URL path/],
  ['a healthcheck path without /', 'healthcheck:\n  path: health\n', /healthcheck\.path: expected a URL path/],
  // nginx and uWSGI tuning.
  ['client_max_body_size with a semicolon', 'nginx:\n  client_max_body_size: "10m; root /"\n', /nginx\.client_max_body_size: expected a size such as 10m/],
  ['a huge harakiri', 'uwsgi:\n  harakiri: 100000000\n', /uwsgi\.harakiri: expected at most 86400/],
  // domains: server_name, certbot.
  ['a domain with a semicolon', 'aliases: ["a.example;"]\n', /aliases\[0\]: expected a host name/],
  ['a domain with a brace', 'aliases: ["a.example { }"]\n', /aliases\[0\]: expected a host name/],
  ['a domain too long', `aliases: ["${'a.'.repeat(130)}example"]\n`, /aliases\[0\]: expected a host name of at most 253 characters/],
  // TLS.
  ['an ACME server over plain HTTP', 'tls:\n  acme_server: http://ca.example/dir\n', /tls\.acme_server: expected an https URL/],
  ['an ACME server with a newline', 'tls:\n  acme_server: "https://ca.example/dir\\nrenew_hook = id"\n', /tls\.acme_server: expected an https URL/],
  // requirements: pip -r in the release, as root.
  ['requirements outside the project', 'requirements: ../../etc/passwd\n', /requirements: .*`\.\.` would climb out/],
  ['requirements absolute', 'requirements: /etc/passwd\n', /requirements: .*absolute/],
  // nodes: ssh.
  ['a node host that is an ssh option', 'nodes:\n  p: -oProxyCommand=id\n', /nodes\.p: .*not starting with -/],
  ['a node user with a space', 'nodes:\n  p:\n    host: web1\n    user: "root -oProxyCommand=id"\n', /nodes\.p\.user: expected one word/],
];

describe('hostile values in kraftwerk.yaml exit 2 naming the file, line and key', () => {
  for (const [what, yaml, expected] of HOSTILE) {
    test(what, async () => {
      const message = await refusal(yaml);
      assert.match(message, expected);
      assert.match(message, /^kraftwerk\.yaml(:\d+)?: /m, 'names the file');
    });
  }
});

describe('reserved site names', () => {
  for (const name of ['postgres', 'template0', 'template1', 'root', 'www-data', 'redis', 'nobody', 'daemon', 'admin', 'kraftwerk', 'pg_shop', 'systemd-x']) {
    test(`package: ${name} is refused, naming the key and why`, async () => {
      const message = await refusal(`package: ${name}\n`);
      assert.match(message, new RegExp(`^kraftwerk\\.yaml:2: package: expected a site name of its own, found the text "${name}": "${name}" (is reserved|starts with)`));
    });
  }

  test('a project folder called postgres is refused, saying the name came from the folder', async () => {
    const message = await refusal('', 'postgres');
    assert.match(message, /^kraftwerk\.yaml: package: the site name comes from the project folder \/.*\/postgres: "postgres" is reserved: PostgreSQL's own database/);
    assert.match(message, /set `package:` to a name of its own/);
  });

  test('a folder called Root (made lower-case) is refused too; `package:` overrides the folder', async () => {
    assert.match(await refusal('', 'Root'), /project folder .*Root: "root" is reserved/);
    const { siteName } = await load('package: shop\n', 'postgres');
    assert.equal(siteName, 'shop');
  });

  test('ordinary names pass', () => {
    for (const name of ['shop', 'blog', 'list', 'mail', 'postgresql-admin', 'www', 'rooted', 'kw-shop', 'kw-project-x1']) assert.equal(reservedSiteName(name), undefined, name);
  });
});

describe('values that are fine keep working', () => {
  test('static folders, URLs and times in the forms people write', async () => {
    const { config } = await load('static:\n  path: ./build/static/\n  url: /assets\n  expires: 1y\n');
    assert.deepEqual(config.static, { path: './build/static/', url: '/assets', expires: '1y' });
    for (const expires of ['30d', '12h', 'max', 'off', 'epoch', '-1', '1h30m', '3600', '500ms']) {
      assert.ok(configSchema.safeParse({ domain: 'a.example', static: { expires } }).success, expires);
    }
    for (const url of ['/static/', '/s/', '/assets', '/a.b/c-d_e~/']) assert.ok(configSchema.safeParse({ domain: 'a.example', static: { url } }).success, url);
  });

  test('environ values may hold anything but NUL: quotes, $, newlines, %', async () => {
    const { config } = await load('environ:\n  A: "it\'s $(not) `run`; {x} %s"\n  B: "two\\nlines"\n  PATH_EXTRA: x\n');
    assert.equal(config.environ.A, "it's $(not) `run`; {x} %s");
    assert.equal(config.environ.B, 'two\nlines');
  });

  test('healthcheck paths with a query, commands with shell syntax and %', async () => {
    const { config } = await load(
      'healthcheck:\n  path: /health?full=1&x=%20\ncron:\n  - schedule: "*/5 * * * *"\n    command: "date +%F >> log; echo \\"$(id)\\""\n',
    );
    assert.equal(settingsOf({ settings: config }, CRON_SETTINGS).cron[0]!.command, 'date +%F >> log; echo "$(id)"');
  });

  test('relative paths: why each bad one is bad', () => {
    assert.equal(relativePathProblem('static'), undefined);
    assert.equal(relativePathProblem('./static/'), undefined);
    assert.equal(relativePathProblem('a/b.c/d'), undefined);
    assert.match(relativePathProblem('.')!, /whole release/);
    assert.match(relativePathProblem('a//b')!, /empty/);
    assert.match(relativePathProblem('a/./b')!, /empty or `\.`/);
  });
});
