import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { checkNames, formatEnv, parseAssignments, parseEnvOutput, parseSetWords, splitNodeArg } from '../../core/cli/actions/env.ts';
import { collectLogSources, logsCommand, parseLogsArgs, siteLogsCommand } from '../../core/cli/actions/logs.ts';
import { commandLine, exitCodeOf, siteRunCommand, splitRunArgs } from '../../core/cli/actions/run.ts';
import { collectNodeStatusParts, formatStatus, parseStatus, statusCommand } from '../../core/cli/actions/status.ts';
import { removeSiteCommand } from '../../core/cli/actions/destroy.ts';
import { renderEnvFile } from '../../core/shell/env-file.ts';
import type { Project } from '../../core/engine/plugin.ts';
import { createSite, type Site } from '../../core/config/site.ts';
import { loadBuiltins } from '../../core/engine/registry.ts';
import { builtinTable } from '../helpers/builtins.ts';

function site(extra: Record<string, unknown> = {}): Site {
  return createSite(configSchema.parse({ domain: 'example.com', ...extra }), { configFile: '/p/kraftwerk.yaml', sourceDir: '/p', name: 'shop' });
}
const project = (extra: Record<string, unknown> = {}): Project => ({ site: site(extra), plugins: [] });
// What the CLI hands status and logs: the parts and sources of the built-in plugins.
const nodePlugins = await loadBuiltins(builtinTable, builtinTable.node);
const logSources = (s: Site) => collectLogSources(nodePlugins, s);

describe('env', () => {
  it('parses NAME=value words; values may hold = and be empty', () => {
    assert.deepEqual(parseAssignments(['A=1', 'URL=postgres://u@h/db?x=y', 'EMPTY=']), { A: '1', URL: 'postgres://u@h/db?x=y', EMPTY: '' });
    assert.throws(() => parseAssignments(['NOVALUE']), /not NAME=value/);
    assert.throws(() => parseAssignments(['1BAD=x']), /not NAME=value/);
    assert.throws(() => parseSetWords([]), /nothing to set/);
    assert.throws(() => checkNames(['OK', 'not ok']), /not a variable name/);
  });

  it('takes a leading word as the node: for set when it has no =, for unset when it is a configured node', () => {
    const p = project({ nodes: { production: 'prod.example.com' } });
    assert.deepEqual(splitNodeArg(p, ['production', 'A=1'], 'set'), { node: 'production', rest: ['A=1'] });
    assert.deepEqual(splitNodeArg(p, ['A=1', 'B=2'], 'set'), { rest: ['A=1', 'B=2'] });
    assert.deepEqual(splitNodeArg(p, ['production', 'A'], 'unset'), { node: 'production', rest: ['A'] });
    assert.deepEqual(splitNodeArg(p, ['A', 'B'], 'unset'), { rest: ['A', 'B'] });
    assert.deepEqual(splitNodeArg(p, ['A'], 'unset', 'stage'), { node: 'stage', rest: ['A'] });
  });

  it('reads the server environment and env.local back, whatever the values contain', () => {
    const tricky = "it's \"quoted\" $HOME `x`\nsecond line";
    const out = `deployed=1\nprepared=1\n---env---\n${renderEnvFile({ A: tricky, B: 'plain' })}---envlocal---\n${renderEnvFile({ A: tricky })}`;
    const parsed = parseEnvOutput(out);
    assert.equal(parsed.deployed, true);
    assert.deepEqual(parsed.env, { A: tricky, B: 'plain' });
    assert.deepEqual(parsed.local, { A: tricky });
    assert.equal(parseEnvOutput('---env---\n---envlocal---\n').deployed, false);
  });

  it('masks every value unless --show, and says where each comes from', () => {
    const env = { SECRET_KEY: 's3cr3t', DATABASE_URL: 'postgresql:///shop', DEBUG: '0' };
    const sources = {
      SECRET_KEY: { kind: 'local' as const },
      DATABASE_URL: { kind: 'plugin' as const, plugin: 'postgres', secret: false },
      DEBUG: { kind: 'environ' as const },
    };
    const masked = formatEnv(env, sources, false).join('\n');
    assert.doesNotMatch(masked, /s3cr3t|postgresql|=0/);
    assert.match(masked, /^DATABASE_URL=\*\*\* +# plugin postgres$/m);
    assert.match(masked, /^SECRET_KEY=\*\*\* +# kraftwerk env set$/m);
    assert.match(masked, /^DEBUG=\*\*\* +# kraftwerk.yaml environ$/m);
    const shown = formatEnv({ A: "it's" }, {}, true).join('\n');
    assert.match(shown, /^A='it'\\''s' +# set at the last deploy$/);
  });
});

describe('logs', () => {
  it('reads -n as a line count (the global -n means dry run elsewhere), and the other options', () => {
    const flags = ['nginx'];
    assert.deepEqual(parseLogsArgs(['-n', '5', 'prod'], flags), { lines: 5, follow: false, node: 'prod' });
    assert.deepEqual(parseLogsArgs(['prod', '-n20', '-f', '--process', 'worker'], flags), { lines: 20, follow: true, process: 'worker', node: 'prod' });
    assert.deepEqual(parseLogsArgs(['--nginx', '--lines=3'], flags), { lines: 3, follow: false, source: 'nginx', node: undefined });
    assert.deepEqual(parseLogsArgs(['-c', 'other.yaml', '-p', 'cron-report'], flags).process, 'cron-report');
    assert.throws(() => parseLogsArgs(['-n', 'many'], flags), /number of lines/);
    assert.throws(() => parseLogsArgs(['a', 'b'], flags), /at most one node/);
  });

  it('tails the right files, as the site user (root follows no link the site put in its log folders)', () => {
    const s = site();
    assert.ok(logsCommand(s, { lines: 5, follow: false, process: 'web' }, logSources(s)).text.includes("\nrunuser -u kw-shop -- sh -c 'cd /var/log/kraftwerk/shop "));
    // web: both slots' logs (web@blue, web@green), whichever are there.
    assert.equal(
      siteLogsCommand(s, { lines: 5, follow: false, process: 'web' }, logSources(s)).text,
      `cd /var/log/kraftwerk/shop 2>/dev/null && set -- $(ls -1 web@*/current 2>/dev/null) && [ "$#" -gt 0 ] || { echo 'kraftwerk: no web log in /var/log/kraftwerk/shop on this node (is the site deployed?)' >&2; exit 3; }
tail -n 5 "$@"`,
    );
    assert.match(siteLogsCommand(s, { lines: 5, follow: true, process: 'web' }, logSources(s)).text, /\ntail -n 5 -F "\$@"$/);
    assert.match(siteLogsCommand(s, { lines: 5, follow: true, process: 'worker' }, logSources(s)).text, /tail -n 5 -F \/var\/log\/kraftwerk\/shop\/worker\/current$/);
    assert.equal(
      logsCommand(s, { lines: 9, follow: false, source: 'nginx' }, logSources(s)).text,
      'tail -n 9 /var/log/nginx/kraftwerk-shop.access.log /var/log/nginx/kraftwerk-shop.error.log',
    );
  });

  it('shows every log of the site with a header each (run for real)', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-logs-'));
    const s = site();
    s.paths.logs = root;
    const noWeb = spawnSync('sh', ['-c', siteLogsCommand(s, { lines: 1, follow: false, process: 'web' }, logSources(s)).text], { encoding: 'utf8' });
    assert.equal(noWeb.status, 3);
    assert.match(noWeb.stderr, /no web log in .* on this node/);
    for (const [dir, text] of [['web@blue', 'blue line 1\nblue line 2\n'], ['web@green', 'green line\n'], ['worker', 'worker line\n']]) {
      mkdirSync(path.join(root, dir!));
      writeFileSync(path.join(root, dir!, 'current'), text!);
    }
    const out = execFileSync('sh', ['-c', siteLogsCommand(s, { lines: 1, follow: false, }, logSources(s)).text], { encoding: 'utf8' });
    assert.match(out, /==> web@blue\/current <==\nblue line 2\n/);
    assert.match(out, /==> web@green\/current <==\ngreen line\n/);
    assert.match(out, /==> worker\/current <==\nworker line\n/);
    const web = execFileSync('sh', ['-c', siteLogsCommand(s, { lines: 1, follow: false, process: 'web' }, logSources(s)).text], { encoding: 'utf8' });
    assert.match(web, /==> web@blue\/current <==\nblue line 2\n/);
    assert.match(web, /==> web@green\/current <==\ngreen line\n/);
    assert.doesNotMatch(web, /worker/);
    const missing = (() => {
      try {
        execFileSync('sh', ['-c', siteLogsCommand(s, { lines: 1, follow: false, process: 'nope' }, logSources(s)).text], { stdio: 'pipe' });
        return '';
      } catch (e) {
        return String((e as { stderr: Buffer }).stderr);
      }
    })();
    assert.match(missing, /no log .*nope\/current/);
    assert.match(missing, /logs here: web@blue web@green worker/);
  });
});

describe('run', () => {
  it('splits node and command at --', () => {
    assert.deepEqual(splitRunArgs(['--', 'python', 'manage.py', 'migrate', '--check'], []), { node: undefined, words: ['python', 'manage.py', 'migrate', '--check'] });
    assert.deepEqual(splitRunArgs(['prod', '--', 'ls', '-la'], []), { node: 'prod', words: ['ls', '-la'] });
    assert.deepEqual(splitRunArgs(['-i', 'prod', '--', 'python'], []), { node: 'prod', words: ['python'] });
    assert.deepEqual(splitRunArgs(['prod', 'ls'], ['prod']), { node: 'prod', words: ['ls'] });
    assert.deepEqual(splitRunArgs(['ls', '-la'], ['prod']), { words: ['ls', '-la'] });
    assert.throws(() => splitRunArgs(['a', 'b', '--', 'ls'], []), /at most one node/);
  });

  it('quotes several words one by one, and takes a single word as shell text', () => {
    assert.equal(commandLine(['echo', "it's", '$HOME']), `echo 'it'\\''s' '$HOME'`);
    assert.equal(commandLine(['echo $HOME > /tmp/x']), 'echo $HOME > /tmp/x');
  });

  it('runs as the site user in current, with the env file and current/.venv on PATH', () => {
    const cmd = siteRunCommand(site(), ['python', 'manage.py', 'check']).text;
    assert.match(cmd, /^runuser -u kw-shop -- sh -c /);
    assert.match(cmd, /cd \/srv\/shop\/current && set -a && \. \.\/\.kraftwerk\/env && set \+a/);
    assert.match(cmd, /PATH=\/srv\/shop\/current\/\.venv\/bin:/);
    assert.match(cmd, /python manage\.py check'$/);
  });

  it('passes exit codes through; a signal gives 128 + its number', () => {
    assert.equal(exitCodeOf(0), 0);
    assert.equal(exitCodeOf(3), 3);
    assert.equal(exitCodeOf(null, 'TERM'), 143);
    assert.equal(exitCodeOf(null, 'KILL'), 137);
  });
});

describe('status', () => {
  const output = `uptime 7384.21
system nginx running
system postgresql running
system redis stopped
system cron running
system runsvdir running
site shop
domains shop.example.com www.shop.example.com 
release 20261125T170102Z
record {"id":"20261125T170102Z","time":"2026-11-25T17:01:09.123Z","deployer":"ann@laptop","revision":"abc123","status":"live"}
service kraftwerk-shop@blue down: /etc/service/kraftwerk-shop@blue: 3600s; run: log: (pid 799) 3700s
slot kraftwerk-shop@blue 20261125T160000Z
service kraftwerk-shop@green run: /etc/service/kraftwerk-shop@green: (pid 812) 3605s; run: log: (pid 800) 3700s
slot kraftwerk-shop@green 20261125T170102Z
service kraftwerk-shop-worker down: /etc/service/kraftwerk-shop-worker: 12s, normally up; run: log: (pid 801) 3700s
disk releases 20480
disk venvs 102400
disk shared/uploads 512
disk backups 3072
lastdump 20261125T180000Z-pre-load
lastbackup 20261125T020000Z
site blog
domains blog.example.com 
release 
disk releases 
lastdump 
lastbackup 
`;
  it('parses what the status command prints', () => {
    const s = parseStatus('prod', output, collectNodeStatusParts(nodePlugins, site()));
    assert.equal(s.uptimeSeconds, 7384);
    assert.deepEqual(s.system, { nginx: 'running', postgresql: 'running', redis: 'stopped', cron: 'running', runsvdir: 'running' });
    const [shop, blog] = s.sites;
    assert.equal(shop!.release, '20261125T170102Z');
    assert.deepEqual(shop!.releaseInfo, { time: '2026-11-25T17:01:09.123Z', deployer: 'ann@laptop', revision: 'abc123' });
    // What runsv was told (doctor's `services` judges by it): the spare is down on purpose, the live one meant to run.
    assert.deepEqual(shop!.services[0], { service: 'kraftwerk-shop@blue', state: 'down', seconds: 3600, release: '20261125T160000Z', wanted: 'down' });
    assert.deepEqual(shop!.services[1], { service: 'kraftwerk-shop@green', state: 'run', pid: 812, seconds: 3605, release: '20261125T170102Z', wanted: 'up', start: 'sv up /etc/service/kraftwerk-shop@green' });
    assert.equal(shop!.services[2]!.state, 'down');
    assert.equal(shop!.services[2]!.note, 'normally up');
    assert.deepEqual(shop!.disk, { releases: 20480, venvs: 102400, uploads: 512, backups: 3072 });
    assert.equal(shop!.lastBackup, '20261125T020000Z');
    assert.equal(blog!.release, undefined);
    assert.deepEqual(blog!.services, []);
  });

  it("gathers the node's processes the plugins name, in the order the node line shows them (run for real)", () => {
    const parts = collectNodeStatusParts(nodePlugins, site());
    const out = execFileSync('sh', ['-c', statusCommand(parts).text], { encoding: 'utf8' });
    const s = parseStatus('here', out, parts);
    assert.deepEqual(Object.keys(s.system), ['nginx', 'postgresql', 'redis', 'cron', 'runsvdir']);
    assert.match(statusCommand(parts).text, /pgrep -x redis-server /);
    // runit's part reads each site's services and web slots.
    assert.match(statusCommand(parts).text, /echo "service \$n \$\(sv status \/etc\/service\/"\$n"/);
  });

  it('prints one block per site', () => {
    const text = formatStatus(parseStatus('prod', output, collectNodeStatusParts(nodePlugins, site())));
    assert.match(text, /^node prod \(up 2h 3m\): nginx running, postgresql running, redis stopped/);
    assert.match(text, /site shop: release 20261125T170102Z \(2026-11-25T17:01:09Z, by ann@laptop, rev abc123\)/);
    assert.match(text, /kraftwerk-shop@green +run \(pid 812\) for 1h 0m; release 20261125T170102Z \(live\)\n/);
    assert.match(text, /kraftwerk-shop@blue +down for 1h 0m; release 20261125T160000Z\n/);
    assert.match(text, /kraftwerk-shop-worker +down for 12s; normally up/);
    assert.match(text, /disk +releases 20\.0 MB, venvs 100\.0 MB, uploads 512 KB, backups 3\.0 MB/);
    assert.match(text, /site blog: not deployed/);
  });
});

describe('destroy', () => {
  it('removes only the paths of its own site (run for real), keeping uploads and backups with --keep-data', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-destroy-'));
    const s = site();
    s.paths.root = path.join(root, 'shop');
    for (const d of ['releases/r1', 'venvs/v', 'shared/uploads', 'backups/20261125T000000Z', '.kraftwerk']) mkdirSync(path.join(s.paths.root, d), { recursive: true });
    writeFileSync(path.join(s.paths.root, 'shared/env'), 'A=1\n');
    writeFileSync(path.join(s.paths.root, 'shared/uploads/u.txt'), 'u');
    mkdirSync(path.join(root, 'other/releases'), { recursive: true });
    const cmd = removeSiteCommand(s, true).text.replace(/\/var\/log\/kraftwerk\/shop|\/etc\/kraftwerk\/sites\/shop|\/srv\/shop\/current\/\.kraftwerk\/uwsgi\.sock/g, path.join(root, 'gone'));
    execFileSync('sh', ['-c', cmd]);
    const left = execFileSync('find', [root, '-mindepth', '1'], { encoding: 'utf8' }).split('\n').filter(Boolean).map((p) => path.relative(root, p)).sort();
    assert.deepEqual(left, ['other', 'other/releases', 'shop', 'shop/backups', 'shop/backups/20261125T000000Z', 'shop/shared', 'shop/shared/uploads', 'shop/shared/uploads/u.txt']);
  });

  it('without --keep-data removes the site folder, its user and group', () => {
    const text = removeSiteCommand(site(), false).text;
    assert.match(text, /rm -rf -- \/srv\/shop\n/);
    assert.match(text, /userdel kw-shop/);
    assert.match(text, /groupdel kw-shop/);
    assert.doesNotMatch(text, /\/srv\/(?!shop)/);
  });
});
