import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createHooks } from '../../core/hooks.ts';
import { RemoteFileSet, SetupPackages } from '../../core/context.ts';
import { sh } from '../../core/shell.ts';
import { TaskList } from '../../core/tasks.ts';
import runitPlugin, {
  renderRunitService,
  renderRunsvdirUnit,
  runsvdirCommand,
  startOrReloadCommand,
  waitForSocketCommand,
} from '../../plugins/runit/index.ts';
import { testSite } from '../helpers/site.ts';

describe('runit: service files', () => {
  it('run starts uWSGI with the site ini in a clean environment; log/run feeds svlogd', async () => {
    const [run, log] = await renderRunitService(testSite());
    assert.equal(run!.path, '/etc/sv/kraftwerk-shop/run');
    assert.equal(run!.mode, 0o755);
    assert.equal(
      run!.content,
      `#!/bin/sh
# Kraftwerk: runit service of site shop. Written by \`kraftwerk deploy\`; edits are overwritten.
exec 2>&1
# /run is a tmpfs: after a reboot the socket folder is gone until someone makes it.
install -d -m 0755 /run/kraftwerk
# uWSGI starts as root so it can bind its socket in /run/kraftwerk and hand it to
# nginx's group; it drops to kw-shop itself (uid/gid in the ini). A clean
# environment: the site's own comes from uWSGI's envdir.
exec env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 /usr/bin/uwsgi --ini /etc/kraftwerk/sites/shop/uwsgi.ini
`,
    );
    assert.equal(log!.path, '/etc/sv/kraftwerk-shop/log/run');
    assert.equal(log!.mode, 0o755);
    assert.equal(
      log!.content,
      `#!/bin/sh
# Kraftwerk: logs of site shop, rotated by svlogd. Written by \`kraftwerk deploy\`.
install -d -m 0750 -o kw-shop -g adm /var/log/kraftwerk/shop
exec svlogd -tt /var/log/kraftwerk/shop
`,
    );
    for (const f of [run!, log!]) assert.equal(spawnSync('sh', ['-n', '-c', f.content]).status, 0, `${f.path} is valid sh`);
  });

  it('systemd unit runs runsvdir and stops services gracefully', async () => {
    const unit = await renderRunsvdirUnit();
    assert.ok(unit.includes('\nExecStart=/usr/bin/runsvdir -P /etc/service\n'));
    assert.ok(unit.includes('\nKillSignal=SIGHUP\nKillMode=mixed\n'));
    assert.ok(unit.includes('\nWantedBy=multi-user.target\n'));
  });
});

describe('runit: commands', () => {
  it('starts a new service by linking it, else reloads it with SIGHUP (exact command)', () => {
    assert.equal(
      startOrReloadCommand(testSite(), { restart: false, restartLog: false }).text,
      `set -e
if [ ! -e /etc/service/kraftwerk-shop ]; then
  ln -sfn /etc/sv/kraftwerk-shop /etc/service/kraftwerk-shop
  echo 'kraftwerk: started'
else
  # runsvdir looks for new services every 5 seconds; runsv must be there before sv can talk to it.
  i=0; until sv status /etc/service/kraftwerk-shop >/dev/null 2>&1; do i=$((i+1)); [ "$i" -lt 100 ] || { echo 'kraftwerk: runsv does not supervise /etc/service/kraftwerk-shop; is runsvdir running? Run kraftwerk setup-node' >&2; exit 1; }; sleep 0.1; done
  case "$(sv status /etc/service/kraftwerk-shop)" in run:*) sv hup /etc/service/kraftwerk-shop >/dev/null; echo 'kraftwerk: reloaded';; *) sv up /etc/service/kraftwerk-shop; echo 'kraftwerk: started';; esac
fi
i=0; ready=
while [ "$i" -lt 150 ]; do
  if python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' /run/kraftwerk/shop.sock 2>/dev/null; then ready=1; break; fi
  i=$((i+1)); sleep 0.2
done
if [ -z "$ready" ]; then echo 'kraftwerk: /run/kraftwerk/shop.sock does not accept connections after 30s' >&2; tail -n 20 /var/log/kraftwerk/shop/current >&2 || true; exit 1; fi`,
    );
  });

  it('restarts instead when the run script changed, and the logger when log/run changed', () => {
    const text = startOrReloadCommand(testSite(), { restart: true, restartLog: true }).text;
    assert.ok(text.includes(`\n  sv -w 30 restart /etc/service/kraftwerk-shop >/dev/null; echo 'kraftwerk: restarted'\n  sv restart /etc/service/kraftwerk-shop/log >/dev/null\nfi\n`));
    assert.ok(!text.includes('sv hup'));
  });

  it('makes runsvdir run under systemd, sysvinit or neither', () => {
    const text = runsvdirCommand({ unitChanged: true }).text;
    assert.ok(text.startsWith('set -e\nif [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then\n  systemctl daemon-reload;'));
    assert.ok(text.includes('systemctl is-enabled --quiet kraftwerk-runsvdir.service || { systemctl enable --quiet kraftwerk-runsvdir.service;'));
    assert.ok(text.includes(`grep -q '^kw:' /etc/inittab || echo 'kw:2345:respawn:/usr/bin/runsvdir -P /etc/service' >> /etc/inittab`));
    assert.ok(text.includes('setsid /usr/bin/runsvdir -P /etc/service </dev/null >/dev/null 2>&1 &'));
    assert.ok(!runsvdirCommand({ unitChanged: false }).text.includes('daemon-reload'));
    assert.equal(spawnSync('sh', ['-n', '-c', text]).status, 0);
  });
});

const hasPython = spawnSync('python3', ['-c', 'import socket']).status === 0;

describe('runit: waiting for the socket (run for real)', () => {
  it('returns as soon as the socket accepts', { timeout: 20_000 }, async (t) => {
    if (!hasPython) return t.skip('python3 is not installed on this machine');
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-sock-'));
    const socket = path.join(dir, 'site.sock');
    const server = net.createServer((c) => c.end());
    try {
      // The socket appears a moment after the wait started, like uWSGI's after a start.
      setTimeout(() => server.listen(socket), 600);
      const child = spawn('sh', ['-c', waitForSocketCommand(socket, 10).text]);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 0);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives up after the bound, says why and runs the timeout handler', { timeout: 20_000 }, (t) => {
    if (!hasPython) return t.skip('python3 is not installed on this machine');
    const r = spawnSync('sh', ['-c', waitForSocketCommand('/nonexistent/kw.sock', 1, sh`echo 'log tail here' >&2`).text], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'kraftwerk: /nonexistent/kw.sock does not accept connections after 1s\nlog tail here\n');
  });
});

describe('runit: plugin', () => {
  it('adds runit at setup-node and the service files in configure', async () => {
    const hooks = createHooks();
    runitPlugin.apply!(hooks, testSite());
    const packages = new SetupPackages();
    const setup = new TaskList('setupNode');
    await hooks.setupNode.promise({} as never, setup as never, packages);
    assert.deepEqual(packages.names, ['runit']);
    assert.equal(setup.length, 1);
    const tasks = new TaskList<never>('configure');
    await hooks.configure.promise({} as never, tasks as never);
    const ctx = { files: new RemoteFileSet() };
    for (const t of tasks.sorted()) await t.run(ctx as never, { title() {}, output() {}, skip() {} });
    assert.deepEqual(
      ctx.files.all.map((f) => f.path),
      ['/etc/sv/kraftwerk-shop/run', '/etc/sv/kraftwerk-shop/log/run'],
    );
  });

  it('restarts (not reloads) when the run script was rewritten', async () => {
    const hooks = createHooks();
    runitPlugin.apply!(hooks, testSite());
    const tasks = new TaskList<never>('restart');
    await hooks.restart.promise({} as never, tasks as never);
    const files = new RemoteFileSet();
    files.changed.add('/etc/sv/kraftwerk-shop/run');
    const commands: string[] = [];
    const ctx = { files, remote: { exec: async (c: { text: string }) => (commands.push(c.text), { code: 0, stdout: 'kraftwerk: restarted\n', stderr: '' }) } };
    const titles: string[] = [];
    await tasks.sorted()[0]!.run(ctx as never, { title: (s: string) => titles.push(s), output() {}, skip() {} });
    assert.ok(commands[0]!.includes('sv -w 30 restart /etc/service/kraftwerk-shop'));
    assert.deepEqual(titles, ['kraftwerk-shop restarted']);
  });
});
