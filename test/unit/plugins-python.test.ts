import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import pythonPlugin, { PYTHON_PACKAGES } from '../../plugins/python/index.ts';
import { hasRequirements, readVenvInputs, venvCommand, venvHash } from '../../plugins/python/venv.ts';
import { aptEnsureCommand } from '../../core/apt.ts';
import { createHooks } from '../../core/hooks.ts';
import { NodeProbe, SetupPackages } from '../../core/context.ts';
import { emptyFacts } from '../../core/probe.ts';
import { TaskList } from '../../core/tasks.ts';
import { testSite } from '../helpers/site.ts';

const base = { requirements: 'flask>=2\n', pythonVersion: '3.11.2', wheelhouse: [] as string[] };

describe('python: venv hash', () => {
  it('is stable, 16 hex digits', () => {
    assert.match(venvHash(base), /^[0-9a-f]{16}$/);
    assert.equal(venvHash(base), venvHash({ ...base }));
  });

  it('changes with the requirements, the Python minor version and the wheelhouse', () => {
    const h = venvHash(base);
    assert.notEqual(venvHash({ ...base, requirements: 'flask>=3\n' }), h);
    assert.notEqual(venvHash({ ...base, pythonVersion: '3.12.1' }), h);
    assert.notEqual(venvHash({ ...base, wheelhouse: ['six-1.16.0-py2.py3-none-any.whl 11053'] }), h);
  });

  it('ignores Python point releases (same ABI, same venv)', () => {
    assert.equal(venvHash({ ...base, pythonVersion: '3.11.9' }), venvHash(base));
  });

  it('reads the requirements and the wheelhouse listing from the project', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-py-'));
    writeFileSync(path.join(dir, 'requirements.txt'), 'six\n');
    assert.deepEqual(readVenvInputs(dir, 'requirements.txt', '3.11.2'), { requirements: 'six\n', pythonVersion: '3.11.2', wheelhouse: [] });
    mkdirSync(path.join(dir, 'wheels'));
    writeFileSync(path.join(dir, 'wheels/six-1.16.0-py2.py3-none-any.whl'), 'x'.repeat(7));
    assert.deepEqual(readVenvInputs(dir, 'requirements.txt', '3.11.2').wheelhouse, ['six-1.16.0-py2.py3-none-any.whl 7']);
  });
});

describe('python: requirements', () => {
  it('counts only real requirement lines', () => {
    assert.equal(hasRequirements(''), false);
    assert.equal(hasRequirements('# only a comment\n\n   \n'), false);
    assert.equal(hasRequirements('flask  # web\n'), true);
    assert.equal(hasRequirements('-r base.txt\n'), true);
  });
});

describe('python: commands', () => {
  it('builds or reuses the venv, pip only when needed', () => {
    const cmd = venvCommand({
      venv: '/srv/shop/venvs/abc',
      requirementsPath: '/srv/shop/releases/R1/requirements.txt',
      noRequirements: false,
      upgrade: false,
    });
    assert.equal(
      cmd.text,
      `set -e
umask 022
if [ -f /srv/shop/venvs/abc/.kraftwerk-complete ]; then echo 'kraftwerk: venv reused'; exit 0; fi
if [ ! -f /srv/shop/venvs/abc/.kraftwerk-complete ]; then rm -rf /srv/shop/venvs/abc; python3 -m venv --system-site-packages /srv/shop/venvs/abc; fi
rm -f /srv/shop/venvs/abc/.kraftwerk-complete
/srv/shop/venvs/abc/bin/python -m pip install --disable-pip-version-check --no-input --root-user-action=ignore --progress-bar off -r /srv/shop/releases/R1/requirements.txt
touch /srv/shop/venvs/abc/.kraftwerk-complete
echo 'kraftwerk: venv built'`,
    );
  });

  it('installs from the wheelhouse without an index; --upgrade-packages upgrades in place', () => {
    const cmd = venvCommand({
      venv: '/srv/shop/venvs/abc',
      requirementsPath: '/srv/shop/releases/R1/requirements.txt',
      wheelhousePath: '/srv/shop/releases/R1/wheels',
      noRequirements: false,
      upgrade: true,
    }).text;
    assert.ok(!cmd.includes('venv reused'), 'an upgrade never reuses the venv as it is');
    assert.match(
      cmd,
      /-m pip install --disable-pip-version-check --no-input --root-user-action=ignore --progress-bar off --upgrade --upgrade-strategy eager -r \/srv\/shop\/releases\/R1\/requirements\.txt --no-index --find-links \/srv\/shop\/releases\/R1\/wheels\n/,
    );
  });

  it('skips pip for a requirements file that names nothing', () => {
    const cmd = venvCommand({ venv: '/v', requirementsPath: '/r.txt', noRequirements: true, upgrade: false }).text;
    assert.ok(!cmd.includes('pip install'));
    assert.ok(cmd.includes(`echo 'kraftwerk: no requirements to install'`));
  });

  it('quotes odd paths', () => {
    const cmd = venvCommand({ venv: "/srv/it's/venvs/x", requirementsPath: '/r.txt', noRequirements: true, upgrade: false }).text;
    assert.ok(cmd.includes(`rm -rf '/srv/it'\\''s/venvs/x'`));
  });

  it('installs only missing apt packages, in one command', () => {
    assert.equal(
      aptEnsureCommand(['python3-flask', 'libpq-dev']).text,
      `missing=$(for p in python3-flask libpq-dev; do dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"; done)
if [ -z "$missing" ]; then echo 'kraftwerk: apt unchanged'; exit 0; fi
echo "kraftwerk: installing" $missing
export DEBIAN_FRONTEND=noninteractive && { apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing || { apt-get update -q && apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing; }; }`,
    );
  });
});

describe('python: plugin', () => {
  it('adds its Debian packages at setup-node', async () => {
    const hooks = createHooks();
    pythonPlugin.apply!(hooks, testSite());
    const packages = new SetupPackages();
    await hooks.setupNode.promise({} as never, new TaskList('setupNode'), packages);
    assert.deepEqual(packages.names, PYTHON_PACKAGES);
    for (const p of ['python3-venv', 'python3-dev', 'build-essential', 'python3-numpy', 'python3-lxml', 'libmagickwand-dev']) {
      assert.ok(packages.names.includes(p), p);
    }
  });

  it('adds the apt task only when the site lists packages', async () => {
    for (const [apt, expected] of [
      [[], true],
      [['python3-flask'], false],
    ] as const) {
      const hooks = createHooks();
      pythonPlugin.apply!(hooks, testSite({ apt: [...apt] }));
      const tasks = new TaskList<never>('install');
      await hooks.install.promise({ probe: new NodeProbe() } as never, tasks as never);
      const aptTask = tasks.sorted().find((t) => t.title.startsWith('apt packages'))!;
      assert.equal(await aptTask.skip!({ facts: emptyFacts() } as never), expected);
    }
  });
});
