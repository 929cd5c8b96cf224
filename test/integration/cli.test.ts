import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { kraftwerk, repoRoot, tempProject } from '../helpers/cli.ts';

const app = { 'app.py': 'def application(environ, start_response):\n    start_response("200 OK", [])\n    return [b"hi"]\n', 'requirements.txt': '' };
const revisionPlugin = path.join(repoRoot, 'examples/plugins/revision.ts');

describe('kraftwerk CLI', () => {
  it('prints help with every main command and exits 0', () => {
    const r = kraftwerk(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const cmd of ['init', 'setup-node', 'deploy', 'plugins', 'schema', 'sandbox', 'create-node']) {
      assert.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), cmd);
    }
  });

  it('exits 2 on an unknown option or command', () => {
    assert.equal(kraftwerk(['--no-such-flag']).code, 2);
    assert.equal(kraftwerk(['no-such-command']).code, 2);
  });

  const bad: [string, string, RegExp][] = [
    ['a misspelled key', 'domian: example.com\n', /domian/],
    ['an unknown service', 'domain: example.com\nservices: [postgress]\n', /services.*postgress[\s\S]*postgres/],
    ['a non-integer workers value', 'domain: example.com\nworkers: 2.5\n', /workers/],
    ['a domain containing a space', 'domain: my site.com\n', /domain/],
    // Hostile values that would reach the node's config files (issue 12).
    ['static: . (the release root, with .kraftwerk/env)', 'domain: example.com\nstatic: .\n', /static: .*whole release/],
    ['a static path climbing out with ..', 'domain: example.com\nstatic:\n  path: ../../etc\n', /static\.path: .*`\.\.` would climb out/],
    ['a static url opening a new nginx block', 'domain: example.com\nstatic:\n  url: "/s/ { }\\nlocation / {"\n', /static\.url: expected a URL path/],
    ['static.expires with a directive after it', 'domain: example.com\nstatic:\n  expires: "1d; autoindex on"\n', /static\.expires: expected an nginx time/],
    ['a NUL byte in environ', 'domain: example.com\nenviron:\n  SECRET: "a\\0b"\n', /environ\.SECRET: expected a value without NUL bytes/],
    ['a site named postgres', 'domain: example.com\npackage: postgres\n', /package: .*"postgres" is reserved/],
    ['a name both in environ and secrets', 'domain: example.com\nenviron:\n  KEY: a\nsecrets:\n  KEY: printf b\n', /secrets\.KEY: KEY is in environ: too/],
    ['a loader variable in secrets', 'domain: example.com\nsecrets:\n  LD_PRELOAD: printf x\n', /secrets\.LD_PRELOAD: .*dynamic loader/],
    ['a secrets command spanning lines', 'domain: example.com\nsecrets:\n  KEY: "printf a\\nrm -rf x"\n', /secrets\.KEY: expected a command/],
    ['a cron schedule spanning lines', 'domain: example.com\ncron:\n  - schedule: "* * * * *\\n* * * * * root id"\n    command: "true"\n', /cron\[0\]\.schedule: .*on one line/],
  ];
  for (const [what, yaml, expected] of bad) {
    it(`refuses ${what} with exit code 2, naming the key, before connecting`, () => {
      const dir = tempProject({ ...app, 'kraftwerk.yaml': `wsgi: app\n${yaml}` });
      const r = kraftwerk(['deploy', 'unreachable.invalid'], { cwd: dir });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, expected);
      assert.match(r.stderr, /kraftwerk\.yaml:\d+/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  }

  it('refuses a hostile kraftwerk.yaml in a --dry-run deploy too, before any connection', () => {
    const dir = tempProject({ ...app, 'kraftwerk.yaml': 'wsgi: app\ndomain: example.com\nstatic: "static;\\n}"\n' });
    const r = kraftwerk(['--dry-run', 'deploy', 'web1.example.invalid'], { cwd: dir });
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(r.stderr, /kraftwerk\.yaml:3: static: .*a newline|kraftwerk\.yaml:3: static: .*";"/);
    // Nothing was tried: no connection, no remote command, not even a dry-run one.
    assert.doesNotMatch(r.stdout + r.stderr, /rsync|ssh|connect|web1\.example\.invalid/i);
  });

  it('lists the project-local plugin and the hooks it taps', () => {
    const dir = tempProject({ ...app, 'kraftwerk.yaml': `domain: example.com\nwsgi: app\nplugins:\n  - ${revisionPlugin}\n` });
    const r = kraftwerk(['plugins'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\s+revision\s+project\s+sync$/m);
    assert.match(r.stdout, /^\s+nginx\s+stack\s+.*configure/m);
  });

  for (const form of ['kraftwerk.yaml', 'kraftwerk.config.ts']) {
    it(`deploy --dry-run shows every step, the plugin's task included, and touches nothing (${form})`, () => {
      const config =
        form === 'kraftwerk.yaml'
          ? `domain: example.com\nwsgi: app\nplugins:\n  - ${revisionPlugin}\n`
          : `import { defineConfig } from 'kraftwerk';\nimport revision from ${JSON.stringify(revisionPlugin)};\nexport default defineConfig({ domain: 'example.com', wsgi: 'app', plugins: [revision] });\n`;
      const dir = tempProject({ ...app, [form]: config });
      const r = kraftwerk(['--dry-run', 'deploy', 'web1.example.invalid'], { cwd: dir });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /revision: write REVISION/);
      assert.match(r.stdout, /rsync .*releases\/\d{8}T\d{6}Z/);
      assert.match(r.stdout, /\/etc\/nginx\/sites-available\/kraftwerk-/);
      assert.match(r.stdout, /Dry run: nothing was changed/);
    });
  }

  describe("a project-local plugin's own settings", () => {
    const withRevision = (extra: string) => `domain: example.com\nwsgi: app\nplugins:\n  - ${revisionPlugin}\n${extra}`;

    it('reach the plugin, validated (the dry run writes the file the setting names)', () => {
      const dir = tempProject({ ...app, 'kraftwerk.yaml': withRevision('revision:\n  file: VERSION\n') });
      const r = kraftwerk(['--dry-run', 'deploy', 'web1.example.invalid'], { cwd: dir });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /revision: write VERSION/);
      assert.match(r.stdout, /^' > \/srv\/[\w-]+\/releases\/\d{8}T\d{6}Z\/VERSION$/m);
      assert.doesNotMatch(r.stdout, /\/REVISION/);
    });

    it('refuse a bad value with exit 2, naming the key and the plugin, before connecting', () => {
      const dir = tempProject({ ...app, 'kraftwerk.yaml': withRevision('revision:\n  file: ../.kraftwerk/env\n') });
      const r = kraftwerk(['--dry-run', 'deploy', 'web1.example.invalid'], { cwd: dir });
      assert.equal(r.code, 2, r.stderr + r.stdout);
      assert.match(r.stderr, /kraftwerk\.yaml:6: revision\.file: expected a file name such as REVISION .*found the text "\.\.\/\.kraftwerk\/env" \(setting of plugin revision\)/);
      assert.doesNotMatch(r.stdout + r.stderr, /rsync|connect|web1\.example\.invalid/i);
    });

    it('are unknown keys without the plugin, and a misspelled one is still found with it', () => {
      const without = tempProject({ ...app, 'kraftwerk.yaml': 'domain: example.com\nwsgi: app\nrevision:\n  file: VERSION\n' });
      const r1 = kraftwerk(['deploy', 'unreachable.invalid'], { cwd: without });
      assert.equal(r1.code, 2, r1.stderr);
      assert.match(r1.stderr, /kraftwerk\.yaml:3: revision: unknown key `revision`/);
      const typo = tempProject({ ...app, 'kraftwerk.yaml': withRevision('revison:\n  file: VERSION\n') });
      const r2 = kraftwerk(['deploy', 'unreachable.invalid'], { cwd: typo });
      assert.equal(r2.code, 2, r2.stderr);
      assert.match(r2.stderr, /revison: unknown key `revison` \(did you mean `revision`\?\)/);
    });

    it('may not claim a key another plugin owns: the error names both', () => {
      const claim = "import { definePlugin, z } from 'kraftwerk';\nexport default definePlugin({ name: 'claim', settings: { cron: z.string() }, apply() {} });\n";
      const dir = tempProject({ ...app, 'claim.ts': claim, 'kraftwerk.yaml': 'domain: example.com\nwsgi: app\nplugins:\n  - claim.ts\n' });
      const r = kraftwerk(['deploy', 'unreachable.invalid'], { cwd: dir });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /plugin claim declares the setting `cron`, which plugin cron already owns/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  });

  describe('secrets: (values a local command prints)', () => {
    const value = 's3cr3t-value';
    // The command builds the value, so that the config file (and the command line of sh) never holds it.
    const withSecret = (command: string) => `domain: example.com\nwsgi: app\nsecrets:\n  STRIPE_KEY: ${JSON.stringify(command)}\n`;
    for (const verbose of [false, true]) {
      it(`reach the release's environment in a dry-run deploy and appear in no output${verbose ? ' (--verbose)' : ''}`, () => {
        const dir = tempProject({ ...app, 'kraftwerk.yaml': withSecret("printf 's3cr3t-%s' value") });
        const r = kraftwerk([...(verbose ? ['--verbose'] : []), '--dry-run', 'deploy', 'web1.example.invalid'], { cwd: dir });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(r.stdout, /write \/srv\/[\w-]+\/releases\/\d{8}T\d{6}Z\/\.kraftwerk\/environ\/STRIPE_KEY \(mode 0640/);
        assert.ok(!(r.stdout + r.stderr).includes(value), 'the value is in the output');
      });
    }

    it('a failing command stops the deploy before any remote command, naming the variable, not the value', () => {
      const dir = tempProject({ ...app, 'kraftwerk.yaml': withSecret("printf 's3cr3t-%s' value; echo 'op: not signed in' >&2; exit 4") });
      const r = kraftwerk(['--verbose', '--dry-run', 'deploy', 'web1.example.invalid'], { cwd: dir });
      assert.equal(r.code, 1, r.stderr + r.stdout);
      assert.match(r.stderr, /error: secrets\.STRIPE_KEY: the command .* failed \(exit 4\)\n\s+op: not signed in/);
      assert.doesNotMatch(r.stdout, /\] \$ |rsync/, 'no remote command was even shown');
      assert.ok(!(r.stdout + r.stderr).includes(value), 'the value is in the output');
    });
  });

  it('prints the JSON Schema of kraftwerk.yaml', () => {
    const r = kraftwerk(['schema']);
    assert.equal(r.code, 0, r.stderr);
    const schema = JSON.parse(r.stdout) as { properties: Record<string, unknown> };
    assert.ok(schema.properties.domain && schema.properties.services);
    // The built-in plugins' keys are in it too (they are the plugins' own, merged by core).
    for (const key of ['workers', 'uwsgi', 'static', 'nginx', 'processes', 'cron', 'backups', 'tls']) assert.ok(schema.properties[key], key);
  });
});
