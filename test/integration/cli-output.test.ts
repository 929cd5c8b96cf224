// The CLI prints exactly what it printed before issue 14's refactor (captured at 6bd407c):
// `--help` and every command's help, `plugins` and `deploy --dry-run` in both examples, and
// `schema`. Each fixture in test/fixtures/cli-output/ names its args and folder; the built CLI
// of this checkout runs them and its output, masked by the same normalise function that wrote
// the fixture, must match byte for byte. To change the output on purpose, refresh the
// fixtures with scripts/capture-cli-output.ts and review the diff.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../helpers/cli.ts';
import { fixturesDir, renderOutput, runCli } from '../helpers/cli-output.ts';

const dir = path.join(repoRoot, fixturesDir);
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

describe('CLI output is what it was before the refactor', () => {
  it('has fixtures for help, plugins, schema and deploy --dry-run', () => {
    for (const name of ['help', 'help-deploy', 'schema', 'plugins-flask-hello', 'plugins-django-site', 'deploy-dry-run-flask-hello', 'deploy-dry-run-django-site']) {
      assert.ok(fixtures.includes(`${name}.txt`), `missing fixture ${name}.txt`);
    }
  });

  for (const file of fixtures) {
    it(file.replace(/\.txt$/, ''), () => {
      const expected = readFileSync(path.join(dir, file), 'utf8');
      const m = /^args: (.*)\ncwd: (.*)\n/.exec(expected);
      assert.ok(m, `${file}: no args/cwd header`);
      const args = m[1].split(' ');
      const cwd = m[2] === '(an empty folder)' ? undefined : m[2];
      const actual = m[0] + renderOutput(runCli(repoRoot, args, cwd), repoRoot);
      let note = '';
      if (actual !== expected && args[0] === 'schema') {
        // Say whether only the order of keys moved, which a reader of the diff cannot easily see.
        const body = (t: string) => t.split('--- stdout\n')[1]!.split('\n--- stderr\n')[0]!;
        const sorted = (v: unknown): unknown =>
          Array.isArray(v) ? v.map(sorted) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sorted(x)])) : v;
        try {
          const same = JSON.stringify(sorted(JSON.parse(body(actual)))) === JSON.stringify(sorted(JSON.parse(body(expected))));
          if (same) note = ' (the same schema with its keys in another order)';
        } catch {
          // Not JSON: the plain diff says it all.
        }
      }
      assert.equal(actual, expected, `kraftwerk ${m[1]} (in ${m[2]}) prints something else than test/fixtures/cli-output/${file}${note}`);
    });
  }
});
