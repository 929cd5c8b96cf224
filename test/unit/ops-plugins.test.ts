import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { type DeployContext, NodeProbe, RemoteFileSet } from '../../core/engine/context.ts';
import { emptyFacts } from '../../core/lifecycle/probe.ts';
import { createHooks, interceptHooks } from '../../core/engine/hooks.ts';
import { isSimpleCommand, parseSvStatus, processServiceFiles, pruneProcessServicesCommand, startOrRestartCommand } from '../../plugins/runit/commands.ts';
import { createSite, type Site } from '../../core/config/site.ts';
import { TaskList } from '../../core/engine/tasks.ts';
import cron, { cronFilePath, cronJobs, cronScriptFile, renderCronFile } from '../../plugins/cron/index.ts';
import processes from '../../plugins/processes/index.ts';

function site(extra: Record<string, unknown> = {}): Site {
  return createSite(configSchema.parse({ domain: 'example.com', ...extra }), { configFile: '/p/kraftwerk.yaml', sourceDir: '/p', name: 'shop' });
}

describe('worker processes (runit services)', () => {
  it('runs a simple command with exec as the site user, in current, with the env file and venv; svlogd as the site too', () => {
    const files = processServiceFiles(site(), 'worker', 'celery -A proj worker -l info');
    const [run, log, marker] = files;
    assert.equal(run!.path, '/etc/sv/kraftwerk-shop-worker/run');
    assert.equal(run!.mode, 0o755);
    assert.ok(files.every((f) => f.atSwitch), 'written by the switch, with the release going live');
    assert.ok(
      run!.content.endsWith(
        `\nexec 2>&1\nexec /usr/bin/chpst -u kw-shop:kw-shop:kwn-shop sh -c 'cd /srv/shop/current && set -a && . ./.kraftwerk/env && set +a && export PATH=/srv/shop/current/.venv/bin:"$PATH" VIRTUAL_ENV=/srv/shop/current/.venv HOME=/srv/shop && exec celery -A proj worker -l info'\n`,
      ),
      run!.content,
    );
    assert.equal(log!.path, '/etc/sv/kraftwerk-shop-worker/log/run');
    assert.match(log!.content, /\nexec \/usr\/bin\/chpst -u kw-shop:kw-shop svlogd -tt \/var\/log\/kraftwerk\/shop\/worker\n$/);
    assert.doesNotMatch(log!.content, /install|chown/, 'root makes no folder at a log start');
    assert.deepEqual([marker!.path, marker!.content], ['/etc/sv/kraftwerk-shop-worker/kraftwerk-site', 'shop\n']);
  });

  it('gives a command with shell syntax a shell of its own (no exec in front of a pipeline; nothing escapes the && chain)', () => {
    assert.equal(isSimpleCommand('python worker.py --queue=default'), true);
    for (const c of ['a && b', 'a | b', 'x > log', 'echo $HOME', 'while true; do x; done']) assert.equal(isSimpleCommand(c), false, c);
    const [run] = processServiceFiles(site(), 'q', 'python a.py && echo done');
    assert.ok(run!.content.includes(`HOME=/srv/shop && exec sh -c '\\''python a.py && echo done'\\'''\n`), run!.content);
  });

  it('prunes only services marked as this site\'s, keeping the configured ones', () => {
    const text = pruneProcessServicesCommand(site(), ['worker', 'beat']).text;
    assert.match(text, /case " kraftwerk-shop-worker kraftwerk-shop-beat " in \*" \$s "\*\) continue;; esac/);
    assert.match(text, /\[ "\$\(cat "\$d\/kraftwerk-site"\)" = shop \]/);
    assert.equal(startOrRestartCommand([]).text, 'true');
  });

  it('reads sv status lines', () => {
    assert.deepEqual(parseSvStatus('x', 'run: /etc/service/x: (pid 42) 7s; run: log: (pid 40) 9s'), { service: 'x', state: 'run', pid: 42, seconds: 7 });
    assert.deepEqual(parseSvStatus('x', 'down: /etc/service/x: 3s, normally up; run: log: (pid 40) 9s'), { service: 'x', state: 'down', seconds: 3, note: 'normally up' });
    assert.equal(parseSvStatus('x', 'fail: /etc/service/x: runsv not running').state, 'unknown');
  });

  it('the plugin writes services only for configured processes, and always checks for dropped ones at restart', async () => {
    for (const [config, files] of [[{ processes: { worker: 'python w.py' } }, 3], [{}, 0]] as const) {
      const s = site(config);
      const hooks = createHooks();
      interceptHooks(hooks);
      processes.apply!(hooks, s);
      const ctx = { site: s, state: new Map(), files: new RemoteFileSet(), probe: new NodeProbe(), facts: emptyFacts() } as unknown as DeployContext;
      const configure = new TaskList<DeployContext>('configure');
      await hooks.configure.promise(ctx, configure);
      for (const t of configure.sorted()) await t.run(ctx, { output() {}, title() {}, skip() {} });
      assert.equal(ctx.files.all.length, files);
      const restart = new TaskList<DeployContext>('restart');
      await hooks.restart.promise(ctx, restart);
      assert.equal(restart.length, 1);
    }
  });
});

describe('cron', () => {
  const s = site({
    cron: [
      { name: 'report', schedule: '*/5 * * * *', command: 'python manage.py report --since "$(date +%F)"' },
      { schedule: '@hourly', command: 'python tidy.py' },
    ],
    backups: { schedule: '30 2 * * *', keep: 3 },
  });

  it('writes one file for the site with every job, the backup included', () => {
    assert.equal(cronFilePath(s), '/etc/cron.d/kraftwerk-shop');
    assert.deepEqual(cronJobs(s).map((j) => [j.name, j.schedule]), [
      ['report', '*/5 * * * *'],
      ['job-2', '@hourly'],
      ['backup', '30 2 * * *'],
    ]);
    const text = renderCronFile(s, cronJobs(s));
    assert.match(text, /^SHELL=\/bin\/sh$/m);
    assert.match(text, /^PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    const lines = text.split('\n').filter((l) => /^[*@0-9]/.test(l));
    assert.equal(lines.length, 3);
  });

  it('runs each job as the site user under flock in its own lock folder; the backup as root, its lock in root\'s folder', () => {
    const [report, tidy, backup] = renderCronFile(s, cronJobs(s)).split('\n').filter((l) => /^[*@0-9]/.test(l));
    assert.equal(
      report,
      '*/5 * * * * kw-shop flock -n /srv/shop/shared/locks/cron-report.lock /srv/shop/current/.kraftwerk/cron/report 2>&1 | svlogd -tt /var/log/kraftwerk/shop/cron-report',
    );
    assert.equal(tidy, '@hourly kw-shop flock -n /srv/shop/shared/locks/cron-job-2.lock /srv/shop/current/.kraftwerk/cron/job-2 2>&1 | svlogd -tt /var/log/kraftwerk/shop/cron-job-2');
    assert.equal(
      backup,
      '30 2 * * * root cd / && flock -n /srv/shop/.kraftwerk/backup.lock sh /srv/shop/.kraftwerk/backup.sh 2>&1 | chpst -u kw-shop:kw-shop svlogd -tt /var/log/kraftwerk/shop/cron-backup',
    );
  });

  it('keeps the command out of the crontab: a script in the release runs it there, with its env and venv', () => {
    const file = cronScriptFile(s, { id: 'R1', path: '/srv/shop/releases/R1', venv: '/srv/shop/venvs/abc' }, cronJobs(s)[0]!);
    assert.deepEqual([file.path, file.mode, file.owner, file.group, file.atSwitch], ['/srv/shop/releases/R1/.kraftwerk/cron/report', 0o750, 'root', 'kw-shop', undefined]);
    assert.ok(
      file.content.endsWith(
        `\ncd /srv/shop/releases/R1 && set -a && . ./.kraftwerk/env && set +a && export PATH=/srv/shop/venvs/abc/bin:"$PATH" VIRTUAL_ENV=/srv/shop/venvs/abc HOME=/srv/shop && exec sh -c 'python manage.py report --since "$(date +%F)"'\n`,
      ),
      file.content,
    );
    assert.doesNotMatch(renderCronFile(s, cronJobs(s)), /%|manage\.py/);
  });

  it('asks setup-node for the cron package and a running daemon', async () => {
    const hooks = createHooks();
    interceptHooks(hooks);
    cron.apply!(hooks, s);
    const { SetupPackages } = await import('../../core/engine/context.ts');
    const packages = new SetupPackages();
    const tasks = new TaskList<never>('setupNode');
    await hooks.setupNode.promise({} as never, tasks as never, packages);
    assert.ok(packages.names.includes('cron'));
    assert.deepEqual(tasks.sorted().map((t) => t.title), ['cron running']);
  });
});
