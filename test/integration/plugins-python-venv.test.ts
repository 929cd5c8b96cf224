import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { COMPLETE_MARKER, venvCommand } from '../../plugins/python/venv.ts';

/** The system Python, with its own (Debian) site packages; the one a node has. */
const SYSTEM_PYTHON = '/usr/bin/python3';

function systemDistribution(): string | undefined {
  if (!existsSync(SYSTEM_PYTHON)) return undefined;
  const r = spawnSync(
    SYSTEM_PYTHON,
    [
      '-c',
      `import importlib.metadata as m, sys
for d in m.distributions():
    p = str(d._path) if hasattr(d, "_path") else ""
    if "dist-packages" in p and d.metadata["Name"]:
        print(d.metadata["Name"]); break`,
    ],
    { encoding: 'utf8' },
  );
  return r.status === 0 ? r.stdout.trim() || undefined : undefined;
}

describe('python: venv built for real (system python3)', () => {
  const venvAvailable = existsSync(SYSTEM_PYTHON) && spawnSync(SYSTEM_PYTHON, ['-c', 'import ensurepip, venv']).status === 0;
  const dist = venvAvailable ? systemDistribution() : undefined;

  it('pip is satisfied by system site packages without a package index; reuse is instant', { timeout: 180_000 }, (t) => {
    if (!venvAvailable) return t.skip('python3-venv is not installed on this machine');
    if (!dist) return t.skip('the system python3 has no package in dist-packages to require');
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-venv-'));
    try {
      writeFileSync(path.join(dir, 'requirements.txt'), `${dist}\n`);
      // An index that refuses every connection: pip fails at once if it tries to use one.
      const env = {
        PATH: `${path.dirname(SYSTEM_PYTHON)}:/usr/sbin:/usr/bin:/sbin:/bin`,
        PIP_INDEX_URL: 'http://127.0.0.1:9/simple',
        PIP_RETRIES: '0',
        PIP_TIMEOUT: '2',
        HOME: dir,
      };
      const run = (requirements: string, upgrade = false) =>
        spawnSync(
          'sh',
          ['-c', venvCommand({ venv: `${dir}/venv`, requirementsPath: requirements, noRequirements: false, upgrade }).text],
          { env, encoding: 'utf8' },
        );
      const built = run(path.join(dir, 'requirements.txt'));
      assert.equal(built.status, 0, built.stderr + built.stdout);
      assert.match(built.stdout, /Requirement already satisfied/);
      assert.match(built.stdout, /kraftwerk: venv built/);
      assert.ok(existsSync(path.join(dir, 'venv', COMPLETE_MARKER)));

      const reused = run(path.join(dir, 'requirements.txt'));
      assert.equal(reused.status, 0);
      assert.equal(reused.stdout.trim(), 'kraftwerk: venv reused');

      // The control: a requirement the system lacks makes pip go to the (refusing) index and fail,
      // and the venv is left without its marker, so it is never reused.
      rmSync(path.join(dir, 'venv'), { recursive: true });
      writeFileSync(path.join(dir, 'missing.txt'), 'kraftwerk-no-such-package-xyz\n');
      const failed = run(path.join(dir, 'missing.txt'));
      assert.notEqual(failed.status, 0);
      assert.ok(existsSync(path.join(dir, 'venv/bin/python')), 'the venv itself was made');
      assert.ok(!existsSync(path.join(dir, 'venv', COMPLETE_MARKER)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
