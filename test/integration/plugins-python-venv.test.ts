import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { COMPLETE_MARKER, parseVenvResult, pruneVenvsCommand, venvCommand } from '../../plugins/python/venv.ts';

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

const venvAvailable = existsSync(SYSTEM_PYTHON) && spawnSync(SYSTEM_PYTHON, ['-c', 'import ensurepip, venv']).status === 0;
const dist = venvAvailable ? systemDistribution() : undefined;
const why = !venvAvailable
  ? 'python3-venv is not installed on this machine'
  : !dist
    ? 'the system python3 has no package in dist-packages to require'
    : process.getuid?.() !== 0
      ? 'pip runs as another user (runuser): run as root'
      : undefined;

/** Paths under `dir` that pip's user did not create, or that others than it may write (symlinks aside). */
function foreignOrWritable(dir: string): string {
  return execFileSync('find', [dir, '!', '-type', 'l', '(', '!', '-user', 'nobody', '-o', '-perm', '/022', ')', '!', '-name', COMPLETE_MARKER], { encoding: 'utf8' }).trim();
}

describe('python: venv built for real (system python3, pip as nobody)', () => {
  it('builds as the build user, read-only to others, without a package index; reuses; an upgrade never touches the live venv; prunes', { skip: why ?? false, timeout: 300_000 }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-venv-'));
    try {
      chmodSync(dir, 0o755);
      const venvs = path.join(dir, 'venvs');
      mkdirSync(venvs, { mode: 0o755 });
      mkdirSync(path.join(dir, 'current'));
      const liveLink = path.join(dir, 'current', '.venv');
      writeFileSync(path.join(dir, 'requirements.txt'), `${dist}\n`);
      writeFileSync(path.join(dir, 'missing.txt'), 'kraftwerk-no-such-package-xyz\n');
      chmodSync(path.join(dir, 'requirements.txt'), 0o644);
      chmodSync(path.join(dir, 'missing.txt'), 0o644);
      // An index that refuses every connection: pip fails at once if it tries to use one.
      const env = {
        PATH: `${path.dirname(SYSTEM_PYTHON)}:/usr/sbin:/usr/bin:/sbin:/bin`,
        PIP_INDEX_URL: 'http://127.0.0.1:9/simple',
        PIP_RETRIES: '0',
        PIP_TIMEOUT: '2',
      };
      const run = (requirements: string, upgradeStamp?: string) =>
        spawnSync(
          'sh',
          [
            '-c',
            venvCommand({
              venvs,
              hash: 'h1',
              liveLink,
              upgradeStamp,
              user: 'nobody',
              group: 'nogroup',
              install: { requirementsPath: path.join(dir, requirements) },
            }).text,
          ],
          { env, encoding: 'utf8' },
        );

      const built = run('requirements.txt');
      assert.equal(built.status, 0, built.stderr + built.stdout);
      assert.match(built.stdout, /Requirement already satisfied/);
      assert.deepEqual(parseVenvResult(built.stdout), { name: 'h1', how: 'built' });
      assert.ok(existsSync(path.join(venvs, 'h1', COMPLETE_MARKER)));
      assert.notEqual(statSync(path.join(venvs, 'h1', 'pyvenv.cfg')).uid, 0, 'venv made as root');
      assert.equal(foreignOrWritable(path.join(venvs, 'h1')), '', 'every file is pip user’s own and writable by it alone');

      const reused = run('requirements.txt');
      assert.equal(reused.status, 0);
      assert.equal(reused.stdout.trim(), 'kraftwerk: venv h1 reused');

      // An upgrade that fails (a requirement the system lacks: pip goes to the refusing index)
      // builds beside the live venv, which keeps its files and its marker.
      symlinkSync(path.join(venvs, 'h1'), liveLink);
      const before = readdirSync(path.join(venvs, 'h1', 'lib'), { recursive: true }).length;
      const failed = run('missing.txt', '20261201T100000Z');
      assert.notEqual(failed.status, 0);
      assert.ok(existsSync(path.join(venvs, 'h1-u20261201T100000Z', 'bin', 'python')), 'the new venv itself was made');
      assert.ok(!existsSync(path.join(venvs, 'h1-u20261201T100000Z', COMPLETE_MARKER)), 'a failed build has no marker');
      assert.ok(existsSync(path.join(venvs, 'h1', COMPLETE_MARKER)));
      assert.equal(readdirSync(path.join(venvs, 'h1', 'lib'), { recursive: true }).length, before);
      assert.equal(run('requirements.txt').stdout.trim(), 'kraftwerk: venv h1 reused', 'a partial venv is never used');

      // A good upgrade; once live, a deploy without --upgrade-packages keeps it.
      const upgraded = run('requirements.txt', '20261201T110000Z');
      assert.equal(upgraded.status, 0, upgraded.stderr);
      assert.deepEqual(parseVenvResult(upgraded.stdout), { name: 'h1-u20261201T110000Z', how: 'built' });
      rmSync(liveLink);
      symlinkSync(path.join(venvs, 'h1-u20261201T110000Z'), liveLink);
      assert.equal(run('requirements.txt').stdout.trim(), 'kraftwerk: venv h1-u20261201T110000Z reused');

      // Prune: a kept release uses the upgraded venv, this deploy h1; the partial one goes.
      const releases = path.join(dir, 'releases');
      mkdirSync(path.join(releases, 'R1'), { recursive: true });
      symlinkSync(path.join(venvs, 'h1-u20261201T110000Z'), path.join(releases, 'R1', '.venv'));
      const pruned = spawnSync('sh', ['-c', pruneVenvsCommand({ venvs, releases, keep: path.join(venvs, 'h1') }).text], { encoding: 'utf8' });
      assert.equal(pruned.stdout.trim(), 'pruned venv h1-u20261201T100000Z');
      assert.deepEqual(readdirSync(venvs).sort(), ['h1', 'h1-u20261201T110000Z']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a pyproject's requirements given to pip, satisfied by Debian's packages without an index", { skip: why ?? false, timeout: 300_000 }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-venv-'));
    try {
      chmodSync(dir, 0o755);
      const venvs = path.join(dir, 'venvs');
      mkdirSync(venvs, { mode: 0o755 });
      const env = { PATH: `${path.dirname(SYSTEM_PYTHON)}:/usr/sbin:/usr/bin:/sbin:/bin`, PIP_INDEX_URL: 'http://127.0.0.1:9/simple', PIP_RETRIES: '0', PIP_TIMEOUT: '2' };
      const run = (specs: string[]) =>
        spawnSync('sh', ['-c', venvCommand({ venvs, hash: 'p1', liveLink: path.join(dir, 'none'), user: 'nobody', group: 'nogroup', install: { specs } }).text], { env, encoding: 'utf8' });
      const built = run([`${dist}>=0`]);
      assert.equal(built.status, 0, built.stderr + built.stdout);
      assert.match(built.stdout, /Requirement already satisfied/);
      assert.deepEqual(parseVenvResult(built.stdout), { name: 'p1', how: 'built' });
      rmSync(path.join(venvs, 'p1'), { recursive: true, force: true });
      assert.notEqual(run(['kraftwerk-no-such-package-xyz']).status, 0, 'a requirement nothing satisfies fails (the index refuses)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
