/**
 * Site variables (kraftwerk env set, shared/env.local) survive rollbacks: a
 * release's saved files come back with its own generated values and the
 * site variables of now.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseEnvFile, renderEnvFile, siteNamesOf } from '../../core/shell/env-file.ts';
import { describeRestoredEnvironment, pruneEnvdirCommand, withCurrentSiteVariables } from '../../core/lifecycle/site-environment.ts';
import { releaseConfig } from '../../core/config/site.ts';
import { releaseUwsgiIni } from '../../plugins/uwsgi/paths.ts';
import type { RemoteFile } from '../../core/remote/remote.ts';

const release = '/srv/shop/releases/20260101T000000';
const own = releaseConfig(release);
const file = (path: string, content: string): RemoteFile => ({ path, content, mode: 0o640, owner: 'root', group: 'shop' });

/** The files a deploy saved: the env file, the envdir, and something else. */
function saved(vars: Record<string, string>, siteNames: string[]): RemoteFile[] {
  return [
    file(releaseUwsgiIni(release), '[uwsgi]\n'),
    file(own.env, renderEnvFile(vars, siteNames)),
    ...Object.entries(vars).map(([k, v]) => file(`${own.environ}/${k}`, v)),
  ];
}

const byPath = (files: RemoteFile[]) => Object.fromEntries(files.map((f) => [f.path, f.content]));

describe('the env file records which variables came from env set', () => {
  it('names them in a comment that sh and the parser skip', () => {
    const text = renderEnvFile({ DATABASE_URL: 'postgres://x', SECRET: 's' }, ['SECRET']);
    assert.deepEqual(siteNamesOf(text), ['SECRET']);
    assert.deepEqual(parseEnvFile(text), { DATABASE_URL: 'postgres://x', SECRET: 's' });
    assert.deepEqual(siteNamesOf(renderEnvFile({ A: '1' })), []);
  });
});

describe('withCurrentSiteVariables', () => {
  it('keeps the release generated values and puts in the current secret, in the env file and the envdir', () => {
    const files = saved({ DATABASE_URL: 'postgres://old-release', SECRET: 'old-secret' }, ['SECRET']);
    const restored = withCurrentSiteVariables(files, release, { SECRET: 'rotated' });
    const out = byPath(restored.files);
    assert.deepEqual(parseEnvFile(out[own.env]!), { DATABASE_URL: 'postgres://old-release', SECRET: 'rotated' });
    assert.equal(out[`${own.environ}/SECRET`], 'rotated');
    assert.equal(out[`${own.environ}/DATABASE_URL`], 'postgres://old-release');
    assert.equal(out[releaseUwsgiIni(release)], '[uwsgi]\n', 'other files come back as they were');
    assert.deepEqual(restored.environment, { generated: 1, site: 1 });
    assert.deepEqual(siteNamesOf(out[own.env]!), ['SECRET']);
  });

  it('drops a site variable removed with env unset since, and keeps its envdir file out', () => {
    const files = saved({ DEBUG: '0', GONE: 'was-set', KEEP: 'k' }, ['GONE', 'KEEP']);
    const restored = withCurrentSiteVariables(files, release, { KEEP: 'k2' });
    const out = byPath(restored.files);
    assert.deepEqual(parseEnvFile(out[own.env]!), { DEBUG: '0', KEEP: 'k2' });
    assert.equal(out[`${own.environ}/GONE`], undefined);
    assert.deepEqual(restored.envdir, { dir: own.environ, names: ['DEBUG', 'KEEP'] });
  });

  it('pruneEnvdirCommand removes the files of other names, also ones the saved set never knew (a real sh)', () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'kw-envdir-')), 'environ');
    mkdirSync(dir);
    for (const name of ['KEEP', 'DEBUG', 'SET_WHILE_LIVE', '.hidden']) writeFileSync(path.join(dir, name), 'x');
    symlinkSync('/etc/passwd', path.join(dir, 'LINK'));
    execFileSync('sh', ['-c', pruneEnvdirCommand(dir, ['DEBUG', 'KEEP']).text]);
    assert.deepEqual(readdirSync(dir).sort(), ['DEBUG', 'KEEP']);
    assert.ok(existsSync('/etc/passwd'), 'a link is removed, never its target');
    execFileSync('sh', ['-c', pruneEnvdirCommand(dir, []).text]);
    assert.deepEqual(readdirSync(dir), []);
    execFileSync('sh', ['-c', pruneEnvdirCommand(path.join(dir, 'missing'), ['A']).text]);
    rmSync(path.dirname(dir), { recursive: true, force: true });
  });

  it('adds a site variable set after the release was deployed, also to its envdir', () => {
    const files = saved({ DEBUG: '0' }, []);
    const restored = withCurrentSiteVariables(files, release, { NEW_SECRET: 'n' });
    const out = byPath(restored.files);
    assert.deepEqual(parseEnvFile(out[own.env]!), { DEBUG: '0', NEW_SECRET: 'n' });
    assert.equal(out[`${own.environ}/NEW_SECRET`], 'n');
    const added = restored.files.find((f) => f.path === `${own.environ}/NEW_SECRET`)!;
    assert.deepEqual([added.mode, added.owner, added.group], [0o640, 'root', 'shop'], 'modes as the envdir had them');
  });

  it('a site variable wins over a generated value of the same name (as at deploy time)', () => {
    const files = saved({ DEBUG: '0' }, []);
    assert.deepEqual(parseEnvFile(byPath(withCurrentSiteVariables(files, release, { DEBUG: '1' }).files)[own.env]!), { DEBUG: '1' });
  });

  it('leaves a file set without an env file alone, and writes no envdir where the release had none', () => {
    const none = [file(releaseUwsgiIni(release), '[uwsgi]\n')];
    assert.deepEqual(withCurrentSiteVariables(none, release, { A: '1' }), { files: none });
    const noEnvdir = [file(own.env, renderEnvFile({ A: '0' }))];
    const out = withCurrentSiteVariables(noEnvdir, release, { A: '1' }).files;
    assert.deepEqual(out.map((f) => f.path), [own.env]);
  });

  it('the rollback line says what the environment is made of', () => {
    assert.equal(
      describeRestoredEnvironment('20260101T000000', { generated: 4, site: 3 }),
      "environment: release 20260101T000000's generated values (4) + 3 site variables from kraftwerk env set (current)",
    );
    assert.match(describeRestoredEnvironment('x', { generated: 0, site: 1 }), /\+ 1 site variable from/);
  });
});
