import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseEnvFile, renderEnvFile } from '../../core/shell/env-file.ts';

const values = {
  PLAIN: 'value',
  SPACES: 'a b  c',
  QUOTES: `it's "quoted"`,
  SUBST: '$(id) `id` $HOME',
  MULTI: 'line one\nline two',
  EMPTY: '',
  URL: 'postgresql:///site?host=/var/run/postgresql',
};

describe('environment file', () => {
  it('is read back by a real shell exactly as written', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-env-'));
    const file = path.join(dir, 'env');
    writeFileSync(file, renderEnvFile(values));
    for (const [k, v] of Object.entries(values)) {
      const out = execFileSync('sh', ['-c', `set -a; . "$1"; set +a; printf %s "$${k}"`, 'sh', file]).toString();
      assert.equal(out, v, k);
    }
  });

  it('parses what it renders', () => {
    assert.deepEqual(parseEnvFile(renderEnvFile(values)), values);
  });

  it('ignores comments and blank lines', () => {
    assert.deepEqual(parseEnvFile('# comment\n\nA=1\n'), { A: '1' });
  });
});
