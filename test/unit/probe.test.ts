/**
 * The deploy's first command: the lock, then the probe with the questions
 * plugins asked (ctx.probe), run for real with sh in a temp folder; and the
 * deploy's last command releasing the lock when nothing after it runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { type DeployContext, NodeProbe, RemoteFileSet } from '../../core/engine/context.ts';
import { createHooks } from '../../core/engine/hooks.ts';
import { acquireLockCommand, DeployLock, LOCK_DIR, LOCKED_MARKER, newLockInfo } from '../../core/lifecycle/lock.ts';
import { emptyFacts, globWord, parseProbe, probeCommand } from '../../core/lifecycle/probe.ts';
import { isProvisioned, provisionMarker } from '../../core/lifecycle/provisioned.ts';
import { corePlugin } from '../../core/lifecycle/core-plugin.ts';
import { RESTART_TASKS_STATE } from '../../core/lifecycle/held-lock.ts';
import { type Script, quote } from '../../core/shell/sh.ts';
import { createSite } from '../../core/config/site.ts';
import { TaskList } from '../../core/engine/tasks.ts';
import type { ExecResult, Remote, RemoteFile } from '../../core/remote/remote.ts';

const root = mkdtempSync(path.join(tmpdir(), 'kw-probe-'));
after(() => rmSync(root, { recursive: true, force: true }));

const site = createSite(configSchema.parse({ domain: 'example.com' }), { configFile: '', sourceDir: root, name: 'demo' });

function sh(text: string) {
  const r = spawnSync('sh', ['-c', text], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function hasDpkg(): boolean {
  return spawnSync('dpkg-query', ['--version']).status === 0;
}

describe('probe: questions of plugins', () => {
  it('answers exists, read, glob and installed in the one probe command', (t) => {
    const dir = path.join(root, 'q');
    mkdirSync(path.join(dir, 'sv', 'kraftwerk-demo-worker'), { recursive: true });
    mkdirSync(path.join(dir, 'sv', 'kraftwerk-demo-beat'), { recursive: true });
    writeFileSync(path.join(dir, 'marker'), `it's "odd"\nwith lines\n`);
    symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
    const probe = new NodeProbe()
      .exists(path.join(dir, 'sv'), path.join(dir, 'missing'), path.join(dir, 'dangling'))
      .read(path.join(dir, 'marker'), path.join(dir, 'no marker'))
      .glob(path.join(dir, 'sv', 'kraftwerk-demo-*'), path.join(dir, 'sv', 'kraftwerk-other-*'))
      .installed('coreutils', 'kraftwerk-no-such-package');
    const r = sh(probeCommand(site, probe).text);
    assert.equal(r.code, 0, r.err);
    const facts = parseProbe(r.out, site, probe);
    assert.deepEqual([...facts.exists].sort(), [path.join(dir, 'dangling'), path.join(dir, 'marker'), path.join(dir, 'sv')].sort());
    assert.deepEqual([...facts.absent].sort(), [path.join(dir, 'missing'), path.join(dir, 'no marker')].sort());
    assert.equal(facts.files.get(path.join(dir, 'marker')), `it's "odd"\nwith lines\n`);
    assert.deepEqual(facts.globs.get(path.join(dir, 'sv', 'kraftwerk-demo-*'))!.sort(), [
      path.join(dir, 'sv', 'kraftwerk-demo-beat'),
      path.join(dir, 'sv', 'kraftwerk-demo-worker'),
    ]);
    assert.deepEqual(facts.globs.get(path.join(dir, 'sv', 'kraftwerk-other-*')), [], 'asked, nothing matched');
    if (!hasDpkg()) return t.skip('dpkg-query is not on this machine');
    assert.deepEqual([...facts.installed], ['coreutils']);
  });

  it('leaves every question open when the probe did not run (--dry-run)', () => {
    const probe = new NodeProbe().exists('/etc').read('/etc/hostname').glob('/etc/*').installed('coreutils');
    const facts = parseProbe('', site, probe);
    assert.deepEqual(facts, emptyFacts());
    assert.equal(facts.globs.get('/etc/*'), undefined, 'unknown, not "none"');
  });

  it('asks nothing extra when no plugin asked', () => {
    assert.ok(!probeCommand(site, new NodeProbe()).text.includes('dpkg-query'));
    assert.equal(probeCommand(site, new NodeProbe()).text, probeCommand(site).text);
  });

  it('quotes a glob pattern except for its pattern characters', () => {
    assert.equal(globWord("/etc/sv/kraftwerk-it's-*"), `'/etc/sv/kraftwerk-it'\\''s-'*`);
    assert.equal(globWord('/a b/[x]?'), `'/a b/'[x]?`);
    assert.throws(() => globWord('/a\nb'), /newline/);
  });
});

describe('provisioned markers', () => {
  it('match only the same inputs', () => {
    const a = provisionMarker(site, 'postgres', 'SQL', 'db');
    assert.equal(a.path, `${site.paths.state}/provisioned/postgres`);
    assert.equal(a.mode, 0o600);
    const facts = emptyFacts();
    assert.equal(isProvisioned(facts, a), false, 'not asked / not there');
    facts.files.set(a.path, a.content);
    assert.equal(isProvisioned(facts, a), true);
    assert.equal(isProvisioned(facts, provisionMarker(site, 'postgres', 'SQL', 'other db')), false);
  });
});

describe('deploy lock taken together with the probe', () => {
  const run = (cmd: Script, dir: string) => sh(cmd.text.split(LOCK_DIR).join(dir));

  it('runs the probe only once the lock is taken; a held lock runs nothing else', () => {
    const dir = mkdtempSync(path.join(root, 'lock-'));
    const then = { text: 'echo probed', display: 'echo probed' };
    const first = run(acquireLockCommand('demo', newLockInfo('deploy'), 30, then), dir);
    assert.equal(first.code, 0, first.err);
    assert.equal(first.out, `acquired\n${LOCKED_MARKER}\nprobed\n`);
    const second = run(acquireLockCommand('demo', newLockInfo('deploy'), 30, then), dir);
    assert.equal(second.code, 3);
    assert.match(second.out, /^held \{.*"command":"deploy"/);
    assert.ok(!second.out.includes('probed'));
  });

  it('a lock+probe command that dies after printing the env file never puts the env into the error', async () => {
    const dir = mkdtempSync(path.join(root, 'die-'));
    const envFile = path.join(dir, 'env');
    writeFileSync(envFile, "SECRET_KEY='hunter2-very-secret'\n");
    // The probe's env section, then the shell is killed (a dropped connection, an OOM kill).
    const dies = { text: `echo ---env---; cat ${quote(envFile)}; kill -9 $$`, display: 'probe' };
    await assert.rejects(
      DeployLock.acquire(new LocalRemote(dir), 'demo', { command: 'deploy', waitMs: 0, node: 'web1', andThen: dies }),
      (error: Error) => {
        assert.match(error.message, /could not take the deploy lock on web1/);
        assert.ok(!error.message.includes('hunter2'), error.message);
        return true;
      },
    );
  });
});

/** A Remote that runs commands with sh here (the lock folder moved into a temp folder) and records them. */
class LocalRemote implements Remote {
  readonly dryRun = false;
  readonly commands: string[] = [];
  readonly target = { name: 'local', host: 'localhost', port: 22, user: 'root', identityFiles: [], knownHostsFiles: [] };
  constructor(private readonly lockDir: string) {}
  get commandCount() {
    return this.commands.length;
  }
  async exec(cmd: Script): Promise<ExecResult> {
    this.commands.push(cmd.text);
    const r = sh(cmd.text.split(LOCK_DIR).join(this.lockDir));
    return { code: r.code, stdout: r.out, stderr: r.err };
  }
  async rsync(): Promise<undefined> {
    throw new Error('no rsync in this test');
  }
  async syncFiles(_files: RemoteFile[]): Promise<string[]> {
    return [];
  }
  async close() {}
}

describe('record release: the last command releases the lock', () => {
  async function recordWith(later: { skip: boolean }) {
    const dir = mkdtempSync(path.join(root, 'rec-'));
    const s = createSite(configSchema.parse({ domain: 'example.com' }), { configFile: '', sourceDir: root, name: 'demo' });
    for (const k of ['state', 'releases'] as const) s.paths[k] = path.join(dir, k);
    const remote = new LocalRemote(path.join(dir, 'locks'));
    const { lock, output } = await DeployLock.acquire(remote, 'demo', { command: 'deploy', waitMs: 0, node: 'local', andThen: { text: 'echo hi', display: 'echo hi' } });
    assert.equal(output, 'hi\n');
    const hooks = createHooks();
    corePlugin.apply!(hooks, s);
    const ctx = {
      site: s,
      node: 'local',
      remote,
      state: new Map<string, unknown>([['core.lock', lock]]),
      release: { id: 'R1', path: `${s.paths.releases}/R1`, venv: '/v', deployer: 'me' },
      probe: new NodeProbe(),
      facts: emptyFacts(),
      files: new RemoteFileSet(),
    } as unknown as DeployContext;
    const restart = new TaskList<DeployContext>('restart');
    await hooks.restart.promise(ctx, restart);
    const record = restart.sorted().find((t) => t.title === 'record release')!;
    ctx.state.set(RESTART_TASKS_STATE, [...restart.sorted(), { title: 'later', stage: (record.stage ?? 0) + 1, skip: () => later.skip, run() {} }]);
    await record.run(ctx, { output() {}, title() {}, skip() {} });
    const locked = sh(`test -d ${quote(path.join(dir, 'locks', 'demo'))}`).code === 0;
    const last = remote.commands.at(-1)!;
    return { locked, last, lockInState: ctx.state.has('core.lock'), lock };
  }

  it('appends the lock release to the record when every later task skips', async () => {
    const r = await recordWith({ skip: true });
    assert.match(r.last, /"status":"live"/);
    assert.match(r.last, /\); kw_rc=\$\?; if grep -q [0-9a-f]+ .*locks\/demo\/info/);
    assert.equal(r.locked, false, 'the lock is gone');
    assert.equal(r.lockInState, false, "core's finally has nothing left to release");
  });

  it('keeps the lock when a later task will run (the finally releases it)', async () => {
    const r = await recordWith({ skip: false });
    assert.ok(!r.last.includes('locks/demo'));
    assert.equal(r.locked, true);
    assert.equal(r.lockInState, true);
    await r.lock.release();
  });
});
