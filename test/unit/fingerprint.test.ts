/**
 * The fingerprint of a release (issue 15, the no-change fast path): what changes it (a file the
 * deploy would send, kraftwerk.yaml, the environment, a `secrets:` value, the node's Python) and
 * what does not (files the deploy leaves out, the order parts come in), and that no value of the
 * environment is in it, only digests.
 */
import { soloTopology } from '../../core/engine/topology.ts';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { type DeployContext, FingerprintParts, NodeProbe, RemoteFileSet } from '../../core/engine/context.ts';
import { createHooks, interceptHooks } from '../../core/engine/hooks.ts';
import { releaseFingerprint } from '../../core/lifecycle/fingerprint.ts';
import { emptyFacts } from '../../core/lifecycle/probe.ts';
import python from '../../plugins/python/index.ts';
import { testSite } from '../helpers/site.ts';

const SECRET = 'sk_live_very_secret_value';

function project(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kw-fingerprint-'));
  writeFileSync(path.join(dir, 'app.py'), 'def application(env, start):\n    return []\n');
  writeFileSync(path.join(dir, 'requirements.txt'), 'flask==3.0.0\n');
  return dir;
}

interface Variant {
  config?: Record<string, unknown>;
  envLocal?: Record<string, string>;
  pythonVersion?: string;
}

/** The fingerprint of `dir` for a node whose facts are `variant`'s (a fresh Site: the file listing is kept per Site). */
async function fingerprintOf(dir: string, variant: Variant = {}): Promise<FingerprintParts> {
  const site = testSite({ secrets: { API_TOKEN: `printf ${SECRET}` }, ...variant.config }, 'shop', dir);
  const hooks = createHooks();
  interceptHooks(hooks);
  python.apply?.(hooks, site);
  const facts = { ...emptyFacts(), pythonVersion: variant.pythonVersion ?? '3.11.2', envLocal: variant.envLocal ?? {} };
  const ctx = {
    site,
    node: 'web1',
    remote: undefined as never,
    options: { dryRun: false, verbose: false, quiet: true },
    log: { info: () => {}, warn: () => {} },
    state: new Map(),
    topology: soloTopology('n'),
    release: { id: '20261202T030000Z', path: '/srv/shop/releases/20261202T030000Z', venv: '', deployer: 'me@here' },
    deploy: { upgradePackages: false, lockWaitMs: 0 },
    probe: new NodeProbe(),
    facts,
    env: {},
    files: new RemoteFileSet(),
  } satisfies DeployContext;
  return releaseFingerprint(hooks, ctx);
}

describe('the fingerprint of a release', () => {
  it('is the same for the same project, node and configuration', async () => {
    const dir = project();
    assert.equal((await fingerprintOf(dir)).digest, (await fingerprintOf(dir)).digest);
  });

  it('changes with a file the deploy would send, not with one it leaves out', async () => {
    const dir = project();
    const before = (await fingerprintOf(dir)).digest;
    mkdirSync(path.join(dir, '__pycache__'));
    writeFileSync(path.join(dir, '__pycache__', 'app.cpython-311.pyc'), 'compiled');
    mkdirSync(path.join(dir, '.git'));
    writeFileSync(path.join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    assert.equal((await fingerprintOf(dir)).digest, before, 'excluded files (and the folder times they change) do not count');
    // Same size, one second later: what rsync's quick check would send.
    writeFileSync(path.join(dir, 'app.py'), 'def application(env, start):\n    return [1]\n'.slice(0, 44));
    const later = new Date(Date.now() + 1000);
    utimesSync(path.join(dir, 'app.py'), later, later);
    assert.notEqual((await fingerprintOf(dir)).digest, before);
  });

  it('changes with kraftwerk.yaml, the values env set stored, a secrets: value and the node’s Python', async () => {
    const dir = project();
    const base = await fingerprintOf(dir);
    const changed = {
      'kraftwerk.yaml (keep_releases)': await fingerprintOf(dir, { config: { keep_releases: 9 } }),
      "kraftwerk.yaml (a plugin's key, workers)": await fingerprintOf(dir, { config: { workers: 7 } }),
      'env set': await fingerprintOf(dir, { envLocal: { FEATURE: 'on' } }),
      'a secrets: value': await fingerprintOf(dir, { config: { secrets: { API_TOKEN: 'printf another-value' } } }),
      "the node's Python": await fingerprintOf(dir, { pythonVersion: '3.12.1' }),
    };
    for (const [what, parts] of Object.entries(changed)) assert.notEqual(parts.digest, base.digest, what);
    // The python plugin's part is its own, named after it.
    assert.notEqual(changed["the node's Python"].entries.get('python:venv'), base.entries.get('python:venv'));
    assert.equal(changed["the node's Python"].entries.get('tree'), base.entries.get('tree'));
  });

  it('holds digests only: no value of the environment, no secret', async () => {
    const parts = await fingerprintOf(project(), { envLocal: { DB_PASSWORD: 'hunter2-on-the-node' } });
    const text = JSON.stringify([...parts.entries]) + parts.digest;
    assert.ok(!text.includes(SECRET), 'the secrets: value is not in it');
    assert.ok(!text.includes('hunter2-on-the-node'), 'an env set value is not in it');
    for (const [name, value] of parts.entries) assert.match(value, /^[0-9a-f]{64}$/, `${name} is a digest`);
  });

  it('does not depend on the order the parts were added in', () => {
    const a = new FingerprintParts().add('x', '1').add('y', '2');
    const b = new FingerprintParts().add('y', '2').add('x', '1');
    assert.equal(a.digest, b.digest);
    assert.notEqual(a.digest, new FingerprintParts().add('x', '2').add('y', '1').digest);
    assert.deepEqual([...new FingerprintParts().forPlugin('nginx').add('site', 'conf').entries.keys()], ['nginx:site']);
  });
});
