/**
 * Issue 12, the runit / cron / worker part: hostile values of kraftwerk.yaml
 * never inject into a crontab or a run script (they run exactly as written,
 * as the site user, or are refused naming the key), and root makes the
 * folders the site writes only from root-owned parents, following no link.
 * Scripts run for real here, with a stand-in for chpst.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { processServiceFiles, SiteDirs, siteDirsCommand } from '../../plugins/runit/commands.ts';
import { createSite, type Site } from '../../core/config/site.ts';
import { cronJobs, cronScriptFile, renderCronFile } from '../../plugins/cron/index.ts';
import { configuredProcesses } from '../../plugins/processes/index.ts';

/** Commands a site could be configured with that a careless quoting would break or inject through. */
const HOSTILE = [
  `printf '%s|' "a;b" '$(id -u)' '\`id -u\`' '%' '%%' '\\%' "it's" 'x"y' '{}' '..' '.hidden'`,
  `echo 'done'; printf '%s\\n' "$(printf ';%s;' inner)"`,
  `printf '%s' "#not a comment" && printf '|%s' '\\'`,
];

function site(extra: Record<string, unknown> = {}): Site {
  return createSite(configSchema.parse({ domain: 'example.com', ...extra }), { configFile: '/p/kraftwerk.yaml', sourceDir: '/p', name: 'shop' });
}

/** A site whose folders are under `root` (the real layout, moved), so its scripts can run here. */
/** A site whose config skipped the schema (which refuses these values first): the plugins' own refusal is the second line. */
function siteUnchecked(extra: Record<string, unknown>): Site {
  const valid = site();
  return { ...valid, settings: { ...valid.settings, ...extra } };
}

function siteIn(root: string, extra: Record<string, unknown> = {}): Site {
  const s = site(extra);
  const p = s.paths;
  for (const k of Object.keys(p) as (keyof typeof p)[]) p[k] = p[k].replace('/srv/shop', root);
  return s;
}

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kw-iso-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A folder with a stand-in `chpst` that drops `-u user:group` and runs the rest: the argv root would hand over. */
function fakeChpst(dir: string): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'chpst'), '#!/bin/sh\n[ "$1" = -u ] || exit 99\nshift 2\nexec "$@"\n', { mode: 0o755 });
  return bin;
}

function expectedOutput(command: string, cwd: string): string {
  return spawnSync('sh', ['-c', command], { cwd, encoding: 'utf8' }).stdout;
}

describe('hostile commands in run scripts and cron jobs', () => {
  it('a worker command runs exactly as written, as the argument of the site user\'s shell', (t) => {
    const root = tmp(t);
    const s = siteIn(root);
    const bin = fakeChpst(root);
    mkdirSync(path.join(root, 'releases/R/.kraftwerk'), { recursive: true });
    writeFileSync(path.join(root, 'releases/R/.kraftwerk/env'), "GREETING='hi there'\n");
    symlinkSync('releases/R', path.join(root, 'current'));
    for (const command of [...HOSTILE, 'printf %s "$GREETING"']) {
      const [run] = processServiceFiles(s, 'w', command);
      const r = spawnSync('sh', ['-c', run!.content.replace('exec /usr/bin/chpst ', `exec ${bin}/chpst `)], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
      assert.equal(r.status, 0, r.stderr);
      if (command.includes('GREETING')) assert.equal(r.stdout, 'hi there', 'with the release\'s environment');
      else assert.equal(r.stdout, expectedOutput(command, root), command);
      assert.equal(spawnSync('sh', ['-n', '-c', run!.content]).status, 0);
    }
  });

  it('a cron command runs exactly as written from its release script, and never reaches the crontab', (t) => {
    const root = tmp(t);
    const release = { id: 'R', path: path.join(root, 'releases/R'), venv: path.join(root, 'venvs/v') };
    mkdirSync(path.join(release.path, '.kraftwerk'), { recursive: true });
    writeFileSync(path.join(release.path, '.kraftwerk/env'), '');
    const s = siteIn(root, { cron: HOSTILE.map((command, i) => ({ name: `j${i}`, schedule: '*/5 * * * *', command })) });
    const jobs = cronJobs(s);
    for (const job of jobs) {
      const script = cronScriptFile(s, release, job);
      const r = spawnSync('sh', ['-c', script.content], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, expectedOutput(job.command!, release.path), job.command);
    }
    const lines = renderCronFile(s, jobs).split('\n').filter((l) => l && !l.startsWith('#') && !l.includes('='));
    assert.equal(lines.length, HOSTILE.length);
    for (const line of lines) {
      // Nothing but the schedule, the user, fixed paths and the job name: no % (a newline to cron), no quotes.
      assert.match(line, /^\*\/5 \* \* \* \* kw-shop flock -n \S+\/shared\/locks\/cron-j\d\.lock \S+\/current\/\.kraftwerk\/cron\/j\d 2>&1 \| svlogd -tt \/var\/log\/kraftwerk\/shop\/cron-j\d$/);
    }
  });

  it('refuses, naming the key, what cannot be written safely (exit 2, before any server is contacted)', () => {
    const refused = (fn: () => unknown, key: RegExp) => {
      assert.throws(fn, (e: unknown) => e instanceof ConfigError && e.exitCode === 2 && key.test(e.message), String(key));
    };
    refused(() => configuredProcesses(siteUnchecked({ processes: { q: 'run\0me' } })), /kraftwerk\.yaml: processes\.q: .*NUL/);
    refused(() => cronJobs(siteUnchecked({ cron: [{ name: 'a', schedule: '@daily', command: 'x\0y' }] })), /cron\[0\]\.command: .*NUL/);
    // The schema splits fields at any white space: a newline between them would start a crontab line of its own.
    refused(() => cronJobs(siteUnchecked({ cron: [{ schedule: '*\n* * * *', command: 'x' }] })), /cron\[0\]\.schedule: expected five cron fields/);
    refused(() => cronJobs(site({ cron: [{ name: 'a', schedule: '@daily', command: 'x' }, { name: 'a', schedule: '@hourly', command: 'y' }] })), /cron\[1\]\.name: .*used twice/);
    refused(() => cronJobs(site({ cron: [{ name: 'backup', schedule: '@daily', command: 'x' }], backups: {} })), /cron\[0\]\.name: .*backups/);
    refused(() => cronJobs(siteUnchecked({ backups: { schedule: '0\n0 * * *', keep: 7 } })), /backups\.schedule: expected five/);
    // Cron's own white space between fields is fine: tabs and runs of spaces become one space.
    assert.equal(cronJobs(site({ cron: [{ schedule: ' 5\t4  * * mon ', command: 'x' }] }))[0]!.schedule, '5 4 * * mon');
  });
});

const isRoot = process.getuid?.() === 0;
const hasDaemon = spawnSync('id', ['-u', 'daemon']).status === 0;

describe('folders the site writes, made by root at deploy time', { skip: !isRoot || !hasDaemon ? 'needs root and the daemon user (chown)' : false }, () => {
  /** A site whose user is `daemon` (it exists everywhere), with its log folder under a root-owned temp folder. */
  function setup(t: { after: (fn: () => void) => void }) {
    const root = tmp(t);
    chmodSync(root, 0o755);
    const logs = path.join(root, 'logs');
    mkdirSync(logs, { mode: 0o750 });
    const s = { ...siteIn(root), user: 'daemon' } as Site;
    s.paths.logs = logs;
    const run = (...dirs: string[]) => {
      const set = new SiteDirs();
      for (const d of dirs) set.add(path.join(logs, d));
      return spawnSync('sh', ['-c', siteDirsCommand(s, set).text], { encoding: 'utf8' });
    };
    return { root, logs, run };
  }
  const daemonUid = Number(spawnSync('id', ['-u', 'daemon'], { encoding: 'utf8' }).stdout.trim());

  it('makes each folder the site user\'s; a symlink where a folder belongs is removed, its target left alone', (t) => {
    const { root, logs, run } = setup(t);
    const target = path.join(root, 'etc-like');
    mkdirSync(target, { mode: 0o755 });
    symlinkSync(target, path.join(logs, 'web@blue'));
    writeFileSync(path.join(logs, 'worker'), 'a file where a folder belongs');
    const r = run('web@blue', 'worker', 'cron-x');
    assert.equal(r.status, 0, r.stderr);
    for (const d of ['web@blue', 'worker', 'cron-x']) {
      const st = lstatSync(path.join(logs, d));
      assert.ok(st.isDirectory() && !st.isSymbolicLink(), d);
      assert.equal(st.uid, daemonUid, d);
      assert.equal(st.mode & 0o777, 0o750, d);
    }
    assert.equal(statSync(target).uid, 0, 'the link target is still root\'s');
  });

  it('moves aside a folder an earlier root svlogd wrote into, instead of changing anything in it', (t) => {
    const { logs, run } = setup(t);
    mkdirSync(path.join(logs, 'web@blue'));
    writeFileSync(path.join(logs, 'web@blue', 'current'), 'old root log\n');
    mkdirSync(path.join(logs, 'worker'));
    writeFileSync(path.join(logs, 'worker', 'config'), '!sh -c id\n');
    spawnSync('chown', ['-R', 'daemon:daemon', path.join(logs, 'worker')]);
    const r = run('web@blue', 'worker');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(path.join(logs, 'web@blue')), [], 'made anew');
    const aside = readdirSync(logs).filter((n) => n.startsWith('.web@blue.'));
    assert.equal(aside.length, 1);
    assert.equal(statSync(path.join(logs, aside[0]!, 'current')).uid, 0, 'the old files are untouched');
    assert.deepEqual(readdirSync(path.join(logs, 'worker')), ['config'], 'a folder that is the site\'s already stays as it is');
  });

  it('refuses a parent the site could write (it could swap the folder between check and chown)', (t) => {
    const { logs, run } = setup(t);
    chmodSync(logs, 0o770);
    const r = run('web@blue');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /is not a folder that only root can write/);
    spawnSync('chown', ['daemon', logs]);
    chmodSync(logs, 0o750);
    assert.equal(run('web@blue').status, 1, 'nor one the site owns');
  });
});
