import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { createHooks } from '../../core/engine/hooks.ts';
import { RemoteFileSet, SetupPackages } from '../../core/engine/context.ts';
import { TaskList } from '../../core/engine/tasks.ts';
import uwsgiPlugin, { renderUwsgiIni, startCheck, startReleaseCommand, uwsgiEnvFiles } from '../../plugins/uwsgi/index.ts';
import { testSite } from '../helpers/site.ts';

const EXPECTED_INI = `; Kraftwerk: uWSGI for site shop. Written by \`kraftwerk deploy\`; edits are overwritten.
[uwsgi]
strict = true
plugin = python3

; This release's own uWSGI: one master, supervised by runit in one of the site's two
; slots (/etc/sv/kraftwerk-shop@blue|green). It starts as root to bind the socket in
; the release (root's folder) and give it to the site's web group (the site and nginx; no
; other site can connect), then drops to the site's user.
master = true
uid = kw-shop
gid = kw-shop
umask = 027
socket = /srv/shop/releases/R1/.kraftwerk/uwsgi.sock
chown-socket = kw-shop:kwn-shop
chmod-socket = 660
; No vacuum: after dropping privileges the master could not remove the socket from
; root's folder anyway; the next start of the release replaces it.

processes = 4
enable-threads = true
thunder-lock = true
single-interpreter = true
need-app = true
harakiri = 30
max-requests = 1000
buffer-size = 32768

chdir = /srv/shop/releases/R1
virtualenv = /srv/shop/venvs/abc
module = shop.wsgi
callable = app

; The environment is read from an envdir (one file per variable, taken literally)
; and not written here: uWSGI expands $(…), @(…) and %(…) in config values. It is
; re-read on every graceful reload (SIGHUP), which is how \`kraftwerk env set\` applies.
envdir = /srv/shop/releases/R1/.kraftwerk/environ

; runit sends TERM to stop: finish the requests in flight, then exit.
die-on-term = true
hook-master-start = unix_signal:15 gracefully_kill_them_all

; uWSGI logs to stderr; runit's svlogd timestamps it into /var/log/kraftwerk/shop/.
`;

const R1 = { path: '/srv/shop/releases/R1', venv: '/srv/shop/venvs/abc' };

describe('uwsgi: ini', () => {
  it('renders the exact ini of a release: its folder, venv, envdir and socket', async () => {
    const site = testSite({ workers: 4, wsgi: 'shop.wsgi:app', uwsgi: { harakiri: 30, max_requests: 1000 } });
    assert.equal(await renderUwsgiIni(site, R1), EXPECTED_INI);
  });

  it('defaults: application callable, harakiri 60, max-requests 5000, 2 workers', async () => {
    const ini = await renderUwsgiIni(testSite({ wsgi: 'app' }), R1);
    for (const line of ['module = app', 'callable = application', 'harakiri = 60', 'max-requests = 5000', 'processes = 2']) {
      assert.ok(ini.split('\n').includes(line), line);
    }
  });
});

describe('uwsgi: environment (envdir)', () => {
  it('writes every value literally, one file per variable, readable by the site only', () => {
    const nasty = `it's "$(id)" %(chdir) @(/etc/passwd) \`x\`\nsecond line`;
    const files = uwsgiEnvFiles(testSite(), '/srv/shop/releases/R1/.kraftwerk/environ', { B: nasty, A: 'plain' }, {});
    assert.deepEqual(files, [
      { path: '/srv/shop/releases/R1/.kraftwerk/environ/A', content: 'plain', mode: 0o640, owner: 'root', group: 'kw-shop' },
      { path: '/srv/shop/releases/R1/.kraftwerk/environ/B', content: nasty, mode: 0o640, owner: 'root', group: 'kw-shop' },
    ]);
  });

  it('empties the file of a variable that was removed, so a reload unsets it', () => {
    const files = uwsgiEnvFiles(testSite(), '/srv/shop/current/.kraftwerk/environ', { KEEP: '1' }, { KEEP: '0', GONE: 'x' });
    assert.deepEqual(
      files.map((f) => [f.path, f.content]),
      [
        ['/srv/shop/current/.kraftwerk/environ/GONE', ''],
        ['/srv/shop/current/.kraftwerk/environ/KEEP', '1'],
      ],
    );
  });
});

describe('uwsgi: plugin', () => {
  it('adds uwsgi and its Python 3 plugin at setup-node', async () => {
    const hooks = createHooks();
    uwsgiPlugin.apply!(hooks, testSite());
    const packages = new SetupPackages();
    await hooks.setupNode.promise({} as never, new TaskList('setupNode'), packages);
    assert.deepEqual(packages.names, ['uwsgi', 'uwsgi-plugin-python3']);
  });

  it('adds the ini (0640, group of the site) and the envdir to the files core writes, in the new release', async () => {
    const site = testSite({ wsgi: 'app' });
    const hooks = createHooks();
    uwsgiPlugin.apply!(hooks, site);
    const tasks = new TaskList<never>('configure');
    await hooks.configure.promise({} as never, tasks as never);
    const ctx = { files: new RemoteFileSet(), env: { GREETING: 'hi' }, facts: { env: {} }, release: { path: '/srv/shop/releases/R1', venv: '/v' } };
    const titles: string[] = [];
    await tasks.sorted()[0]!.run(ctx as never, { title: (s: string) => titles.push(s), output() {}, skip() {} });
    assert.deepEqual(
      ctx.files.all.map((f) => [f.path, f.mode, f.owner, f.group]),
      [
        ['/srv/shop/releases/R1/.kraftwerk/uwsgi.ini', 0o640, 'root', 'kw-shop'],
        ['/srv/shop/releases/R1/.kraftwerk/environ/GREETING', 0o640, 'root', 'kw-shop'],
      ],
    );
    assert.deepEqual(titles, ['uWSGI configuration (2 workers, 1 environment variables)']);
  });
});

describe('uwsgi: starting a new release beside the live one', () => {
  it('runs after the release commands, before the switch; a rollback starts its release in the restart phase', async () => {
    const hooks = createHooks();
    uwsgiPlugin.apply!(hooks, testSite());
    const configure = new TaskList<never>('configure');
    await hooks.configure.promise({} as never, configure as never);
    assert.equal(configure.sorted()[1]!.stage, 360, 'after the release commands (AFTER_FILES + 50)');
    const restart = new TaskList<never>('restart');
    await hooks.restart.promise({} as never, restart as never);
    const [again] = restart.sorted();
    assert.equal(again!.stage, 350, 'before the switch (SWITCH - 50)');
    assert.equal(await again!.skip!({ state: new Map([['uwsgi.started', true]]) } as never), true, 'a deploy started it in configure already');
    assert.equal(await again!.skip!({ state: new Map() } as never), false);
  });

  it('starts the release in the spare slot with sv once, asks the health check path with the canonical Host, and stops it on failure', () => {
    const site = testSite({ healthcheck: { path: '/health', status: [200, 204], timeout: 5 } });
    assert.deepEqual(startCheck(site), { host: 'shop.example', path: '/health', statuses: ['200', '204'], timeoutSeconds: 35 });
    const text = startReleaseCommand(site, R1, startCheck(site)).text;
    assert.ok(text.startsWith(`live=$(readlink -f /srv/shop/current 2>/dev/null || true)
slot=blue
if [ -n "$live" ] && [ "$(readlink -f /etc/sv/kraftwerk-shop@"blue"/release 2>/dev/null)" = "$live" ]; then slot=green; fi
svc=/etc/service/kraftwerk-shop@"$slot"; def=/etc/sv/kraftwerk-shop@"$slot"
# .kraftwerk/: root's; the site and nginx (web group) pass through to the socket. environ/, the ini
# and env inside: root:<site user> 0640, the site reads them, nginx cannot.
install -d -m 0750 -o root -g kwn-shop /srv/shop/releases/R1/.kraftwerk
install -d -m 0750 -o root -g kw-shop /srv/shop/releases/R1/.kraftwerk/environ
`));
    for (const part of [
      'sv -w 30 force-stop "$svc" >/dev/null 2>&1 || true\ntouch "$def/down"\nln -sfn /srv/shop/releases/R1 "$def/release"\nrm -f /srv/shop/releases/R1/.kraftwerk/uwsgi.sock\nsv once "$svc" >/dev/null\n',
      ' /srv/shop/releases/R1/.kraftwerk/uwsgi.sock shop.example /health 35 2>/dev/null) || status=\n',
      `  200|204) sv up "$svc"; echo "kraftwerk: $slot answers $status"; exit 0;;`,
      `sv down "$svc" >/dev/null 2>&1 || true; echo 'kraftwerk: GET /health (Host: shop.example) on the new release answered' "\${status:-nothing}" >&2; sleep 0.3; runuser -u kw-shop -- tail -n 30 /var/log/kraftwerk/shop/web@"$slot"/current`,
    ]) {
      assert.ok(text.includes(part), part);
    }
    assert.ok(!text.includes('sv restart "$svc/log"'));
    assert.ok(startReleaseCommand(site, R1, startCheck(site), { restartLog: true }).text.includes('sv restart "$svc/log"'));
    assert.equal(spawnSync('sh', ['-n', '-c', text]).status, 0);
  });

  it('without a health check, any answer shows that the app loaded', () => {
    const check = startCheck(testSite({ healthcheck: false }));
    assert.deepEqual(check, { host: 'shop.example', path: '/', statuses: ['*'], timeoutSeconds: 60 });
    assert.ok(startReleaseCommand(testSite(), R1, check).text.includes('  *) sv up "$svc";'));
  });

  it('its uwsgi-protocol client reads the status of a real answer', { timeout: 20_000 }, async (t) => {
    if (spawnSync('python3', ['-c', 'import socket']).status !== 0) return t.skip('python3 is not installed on this machine');
    const net = await import('node:net');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const text = startReleaseCommand(testSite(), R1, { host: 'shop.example', path: '/health?deep=1', statuses: ['2??'], timeoutSeconds: 5 }).text;
    // The client alone: the python3 -c '…' line of the command, pointed at a socket that answers like uWSGI.
    const client = /status=\$\((python3 -c '[\s\S]*?') \/srv\/shop\/releases\/R1\/\.kraftwerk\/uwsgi\.sock shop\.example '\/health\?deep=1' 5 2>\/dev\/null\)/.exec(text)![1]!;
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-uwsgi-'));
    const socket = path.join(dir, 'app.sock');
    let request = Buffer.alloc(0);
    const server = net.createServer((c) => {
      c.on('data', (d: Buffer) => {
        request = Buffer.concat([request, d]);
        c.end('HTTP/1.1 204 No Content\r\n\r\n');
      });
    });
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      const out = await new Promise<string>((resolve) => {
        const child = spawn('sh', ['-c', `${client} ${socket} shop.example '/health?deep=1' 5`]);
        let o = '';
        child.stdout.on('data', (d: Buffer) => (o += d));
        child.on('exit', () => resolve(o));
      });
      assert.equal(out, '204\n');
      assert.equal(request[0], 0, 'uwsgi packet modifier1 0 (WSGI)');
      const vars = request.subarray(4).toString('latin1');
      for (const part of ['HTTP_HOST\x0c\x00shop.example', 'PATH_INFO\x07\x00/health', 'QUERY_STRING\x06\x00deep=1']) assert.ok(vars.includes(part), part);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
