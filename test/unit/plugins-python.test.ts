import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import pythonPlugin, { PYTHON_PACKAGES } from '../../plugins/python/index.ts';
import { hasDependencies } from '../../plugins/python/requirements.ts';
import {
  buildUser,
  buildUserCommand,
  parseVenvResult,
  pruneVenvsCommand,
  readVenvInputs,
  removeBuildUserCommand,
  reusableVenv,
  venvCommand,
  venvHash,
} from '../../plugins/python/venv.ts';
import { aptEnsureCommand } from '../../core/shell/apt.ts';
import { createHooks } from '../../core/engine/hooks.ts';
import { NodeProbe, SetupPackages } from '../../core/engine/context.ts';
import { emptyFacts } from '../../core/lifecycle/probe.ts';
import { TaskList } from '../../core/engine/tasks.ts';
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
    assert.deepEqual(readVenvInputs(dir, { kind: 'requirements', file: 'requirements.txt', text: 'six\n' }, '3.11.2'), { requirements: 'six\n', pythonVersion: '3.11.2', wheelhouse: [] });
    mkdirSync(path.join(dir, 'wheels'));
    writeFileSync(path.join(dir, 'wheels/six-1.16.0-py2.py3-none-any.whl'), 'x'.repeat(7));
    assert.deepEqual(readVenvInputs(dir, { kind: 'requirements', file: 'requirements.txt', text: 'six\n' }, '3.11.2').wheelhouse, ['six-1.16.0-py2.py3-none-any.whl 7']);
  });
});

describe('python: requirements', () => {
  const req = (text: string) => ({ kind: 'requirements' as const, file: 'requirements.txt', text });
  it('counts only real requirement lines', () => {
    assert.equal(hasDependencies(req('')), false);
    assert.equal(hasDependencies(req('# only a comment\n\n   \n')), false);
    assert.equal(hasDependencies(req('flask  # web\n')), true);
    assert.equal(hasDependencies(req('-r base.txt\n')), true);
    assert.equal(hasDependencies({ kind: 'pyproject', file: 'pyproject.toml', specs: [] }), false);
  });
});

describe('python: commands', () => {
  const build = {
    venvs: '/srv/shop/venvs',
    hash: 'abc',
    liveLink: '/srv/shop/current/.venv',
    user: 'kwb-shop',
    group: 'kw-shop',
    install: { requirementsPath: '/srv/shop/releases/R1/requirements.txt' },
  };

  it('reuses the live venv of this hash (else the newest complete one), or builds <hash> as the build user', () => {
    assert.equal(
      venvCommand(build).text,
      `set -e
cd /srv/shop/venvs
live=$(readlink /srv/shop/current/.venv 2>/dev/null || true)
found=
for d in abc abc-u*; do
  [ -f "$d/.kraftwerk-complete" ] || continue
  found=$d
  [ /srv/shop/venvs/"$d" = "$live" ] && break
done
if [ -n "$found" ]; then echo "kraftwerk: venv $found reused"; exit 0; fi
id -u kwb-shop >/dev/null 2>&1 || useradd --system --gid kw-shop --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin kwb-shop
rm -rf -- abc
install -d -m 0755 -o kwb-shop -g kw-shop abc
cd /
# No process of the build user outlives the build (kill -1 as that user reaches only its own).
status=0; runuser -u kwb-shop -- sh -c 'set -e; umask 022; export HOME=/srv/shop/venvs/abc; python3 -m venv --system-site-packages /srv/shop/venvs/abc; /srv/shop/venvs/abc/bin/python -m pip install --disable-pip-version-check --no-input --no-cache-dir --progress-bar off -r /srv/shop/releases/R1/requirements.txt; chmod -R go-w /srv/shop/venvs/abc' || status=$?
runuser -u kwb-shop -- sh -c 'kill -KILL -1 2>/dev/null' || true
[ "$status" = 0 ] || exit "$status"
touch /srv/shop/venvs/abc/.kraftwerk-complete
echo 'kraftwerk: venv abc built'`,
    );
  });

  it('finds the venv to reuse from the probe by the command\'s own rule, so a usual deploy runs no command for it', () => {
    const v = '/srv/shop/venvs';
    // As a glob of the markers lists them: `-` sorts before `/`, so abc-u… comes before abc.
    const listed = [`${v}/abc-u20261201T120000Z/.kraftwerk-complete`, `${v}/abc-u20261202T080000Z/.kraftwerk-complete`, `${v}/abc/.kraftwerk-complete`, `${v}/abd/.kraftwerk-complete`];
    assert.equal(reusableVenv(v, 'abc', listed, `${v}/abc-u20261201T120000Z`), 'abc-u20261201T120000Z', 'the live one');
    assert.equal(reusableVenv(v, 'abc', listed, `${v}/abc`), 'abc');
    assert.equal(reusableVenv(v, 'abc', listed, `${v}/abd`), 'abc-u20261202T080000Z', 'else the last of abc, abc-u*');
    assert.equal(reusableVenv(v, 'abc', listed.slice(2, 3)), 'abc');
    assert.equal(reusableVenv(v, 'abe', listed, `${v}/abc`), undefined, 'none of this hash: the command builds it');
    assert.equal(reusableVenv(v, 'abc', ['/elsewhere/abc/.kraftwerk-complete']), undefined);
  });

  it('never runs pip or venv as root: both inside runuser as the build user', () => {
    const text = venvCommand(build).text;
    const outside = text.replace(/runuser -u kwb-shop -- sh -c '[^']*'/g, '');
    assert.ok(!/pip|python3 -m venv/.test(outside), outside);
    assert.ok(!text.includes('--root-user-action'));
  });

  it('--upgrade-packages builds a new venv <hash>-u<release>, from the wheelhouse without an index, and never reuses one', () => {
    const cmd = venvCommand({ ...build, upgradeStamp: '20261201T120000Z', wheelhousePath: '/srv/shop/releases/R1/wheels' }).text;
    assert.ok(!cmd.includes('reused'), 'an upgrade never reuses a venv');
    assert.ok(!/\babc\b(?!-u)/.test(cmd.replace(/venvs\/abc-u20261201T120000Z|abc-u20261201T120000Z/g, '')), 'the venv abc itself is not touched');
    assert.match(cmd, /\nrm -rf -- abc-u20261201T120000Z\ninstall -d -m 0755 -o kwb-shop -g kw-shop abc-u20261201T120000Z\n/);
    assert.match(
      cmd,
      /-m pip install --disable-pip-version-check --no-input --no-cache-dir --progress-bar off --upgrade --upgrade-strategy eager --no-index --find-links \/srv\/shop\/releases\/R1\/wheels --no-build-isolation -r \/srv\/shop\/releases\/R1\/requirements\.txt;/,
    );
    assert.match(cmd, /echo 'kraftwerk: venv abc-u20261201T120000Z built'$/);
  });

  it('reads which venv it used from the last line', () => {
    assert.deepEqual(parseVenvResult('Collecting six\nkraftwerk: venv abc-u20261201T120000Z built\n'), { name: 'abc-u20261201T120000Z', how: 'built' });
    assert.deepEqual(parseVenvResult('kraftwerk: venv abc reused\n'), { name: 'abc', how: 'reused' });
    assert.equal(parseVenvResult('kraftwerk: no requirements to install\n'), undefined);
  });

  it('skips pip for a requirements file that names nothing', () => {
    const cmd = venvCommand({ ...build, install: undefined }).text;
    assert.ok(!cmd.includes('pip install'));
    assert.ok(cmd.includes(`echo '\\''kraftwerk: no requirements to install'\\''`));
  });

  it('quotes odd paths', () => {
    const cmd = venvCommand({ ...build, venvs: "/srv/it's/venvs" }).text;
    assert.ok(cmd.includes(`cd '/srv/it'\\''s/venvs'`));
  });

  it('prunes the venvs that no kept release folder links to, keeping this deploy’s', () => {
    assert.equal(
      pruneVenvsCommand({ venvs: '/srv/shop/venvs', releases: '/srv/shop/releases', keep: '/srv/shop/venvs/abc' }).text,
      `cd /srv/shop/venvs 2>/dev/null || exit 0
used=$({ for r in /srv/shop/releases/*/; do readlink "$r.venv" 2>/dev/null; done; echo /srv/shop/venvs/abc; } | sort -u)
for d in */; do
  d=\${d%/}
  printf '%s\\n' "$used" | grep -qxF /srv/shop/venvs/"$d" && continue
  rm -rf -- "$d" && echo "pruned venv $d"
done; true`,
    );
  });

  it('makes and removes a build user per site, in the site group', () => {
    assert.equal(buildUser('shop'), 'kwb-shop');
    assert.equal(buildUser('a'.repeat(28)).length, 32, 'the longest site name still fits useradd');
    assert.match(buildUserCommand('kwb-shop', 'kw-shop').text, /useradd --system --gid kw-shop .* kwb-shop$/);
    assert.match(removeBuildUserCommand('kwb-shop').text, /pkill -KILL -u kwb-shop .*userdel kwb-shop/);
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

  it('prunes venvs after the release record, and sends no command when the one venv is this release\'s', async () => {
    const hooks = createHooks();
    pythonPlugin.apply!(hooks, testSite());
    const probe = new NodeProbe();
    const tasks = new TaskList<never>('restart');
    await hooks.restart.promise({ probe } as never, tasks as never);
    const prune = tasks.sorted().find((t) => t.title === 'prune venvs')!;
    assert.ok((prune.stage ?? 0) > 700, 'after core records the release (Stage.VERIFY + 100) and prunes release folders');
    assert.deepEqual([...probe.patterns], ['/srv/shop/venvs/*']);
    const facts = (venvs: string[]) => ({ ...emptyFacts(), globs: new Map([['/srv/shop/venvs/*', venvs]]) });
    const release = { venv: '/srv/shop/venvs/abc' };
    assert.equal(await prune.skip!({ facts: facts(['/srv/shop/venvs/abc']), release } as never), 'venvs (nothing to prune)');
    assert.equal(await prune.skip!({ facts: facts(['/srv/shop/venvs/abc', '/srv/shop/venvs/old']), release } as never), false);
  });
});
