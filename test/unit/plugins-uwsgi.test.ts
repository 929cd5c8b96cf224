import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { createHooks } from '../../core/hooks.ts';
import { RemoteFileSet, SetupPackages } from '../../core/context.ts';
import { TaskList } from '../../core/tasks.ts';
import uwsgiPlugin, { renderUwsgiIni, uwsgiEnvDir, uwsgiEnvFiles, uwsgiIniPath } from '../../plugins/uwsgi/index.ts';
import { testSite } from '../helpers/site.ts';

const EXPECTED_INI = `; Kraftwerk: uWSGI for site shop. Written by \`kraftwerk deploy\`; edits are overwritten.
[uwsgi]
strict = true
plugin = python3

; One master per site, supervised by runit (/etc/sv/kraftwerk-shop). It starts as
; root to bind the socket in /run/kraftwerk and give it to nginx's group, then drops to
; the site's own user.
master = true
uid = kw-shop
gid = kw-shop
umask = 027
socket = /run/kraftwerk/shop.sock
chown-socket = kw-shop:www-data
chmod-socket = 660
vacuum = true

processes = 4
enable-threads = true
thunder-lock = true
single-interpreter = true
need-app = true
harakiri = 30
max-requests = 1000
buffer-size = 32768

chdir = /srv/shop/current
virtualenv = /srv/shop/current/.venv
module = shop.wsgi
callable = app

; The environment is read from an envdir (one file per variable, taken literally)
; and not written here: uWSGI expands $(…), @(…) and %(…) in config values. It is
; re-read on every graceful reload (SIGHUP), so a deploy that changes it needs no restart.
envdir = /etc/kraftwerk/sites/shop/env

; runit sends TERM to stop: finish the requests in flight, then exit.
die-on-term = true
hook-master-start = unix_signal:15 gracefully_kill_them_all

; uWSGI logs to stderr; runit's svlogd timestamps it into /var/log/kraftwerk/shop/.
`;

describe('uwsgi: ini', () => {
  it('renders the exact ini for a site', async () => {
    const site = testSite({ workers: 4, wsgi: 'shop.wsgi:app', uwsgi: { harakiri: 30, max_requests: 1000 } });
    assert.equal(await renderUwsgiIni(site), EXPECTED_INI);
  });

  it('defaults: application callable, harakiri 60, max-requests 5000, 2 workers', async () => {
    const ini = await renderUwsgiIni(testSite({ wsgi: 'app' }));
    for (const line of ['module = app', 'callable = application', 'harakiri = 60', 'max-requests = 5000', 'processes = 2']) {
      assert.ok(ini.split('\n').includes(line), line);
    }
  });

  it('can run one release on its own socket (for a release started beside the live one)', async () => {
    const ini = await renderUwsgiIni(testSite(), { socket: '/run/kraftwerk/shop-next.sock', chdir: '/srv/shop/releases/R2', venv: '/srv/shop/venvs/h' });
    assert.ok(ini.includes('\nsocket = /run/kraftwerk/shop-next.sock\n'));
    assert.ok(ini.includes('\nchdir = /srv/shop/releases/R2\nvirtualenv = /srv/shop/venvs/h\n'));
  });

  it('lives in /etc/kraftwerk/sites/<site>/', () => {
    assert.equal(uwsgiIniPath(testSite()), '/etc/kraftwerk/sites/shop/uwsgi.ini');
    assert.equal(uwsgiEnvDir(testSite()), '/etc/kraftwerk/sites/shop/env');
  });
});

describe('uwsgi: environment (envdir)', () => {
  it('writes every value literally, one file per variable, readable by the site only', () => {
    const nasty = `it's "$(id)" %(chdir) @(/etc/passwd) \`x\`\nsecond line`;
    const files = uwsgiEnvFiles(testSite(), { B: nasty, A: 'plain' }, {});
    assert.deepEqual(files, [
      { path: '/etc/kraftwerk/sites/shop/env/A', content: 'plain', mode: 0o640, owner: 'root', group: 'kw-shop' },
      { path: '/etc/kraftwerk/sites/shop/env/B', content: nasty, mode: 0o640, owner: 'root', group: 'kw-shop' },
    ]);
  });

  it('empties the file of a variable that was removed, so a reload unsets it', () => {
    const files = uwsgiEnvFiles(testSite(), { KEEP: '1' }, { KEEP: '0', GONE: 'x' });
    assert.deepEqual(
      files.map((f) => [f.path, f.content]),
      [
        ['/etc/kraftwerk/sites/shop/env/GONE', ''],
        ['/etc/kraftwerk/sites/shop/env/KEEP', '1'],
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

  it('adds the ini (0640, group of the site) and the envdir to the files core writes', async () => {
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
        ['/etc/kraftwerk/sites/shop/uwsgi.ini', 0o640, 'root', 'kw-shop'],
        ['/etc/kraftwerk/sites/shop/env/GREETING', 0o640, 'root', 'kw-shop'],
        ['/etc/kraftwerk/sites/shop/preflight.ini', 0o640, 'root', 'kw-shop'],
      ],
    );
    assert.deepEqual(titles, ['uWSGI configuration (2 workers, 1 environment variables)']);
  });
});

describe('uwsgi: preflight of a new release', () => {
  it('renders a one-worker instance of the new release on its own socket', async () => {
    const { preflightIniPath, preflightSocket } = await import('../../plugins/uwsgi/index.ts');
    const site = testSite({ wsgi: 'app' });
    const hooks = createHooks();
    uwsgiPlugin.apply!(hooks, site);
    const tasks = new TaskList<never>('configure');
    await hooks.configure.promise({} as never, tasks as never);
    const ctx = { files: new RemoteFileSet(), env: {}, facts: { env: {} }, release: { path: '/srv/shop/releases/R7', venv: '/srv/shop/venvs/abc' } };
    await tasks.sorted()[0]!.run(ctx as never, { title() {}, output() {}, skip() {} });
    const ini = ctx.files.all.find((f) => f.path === preflightIniPath(site))!;
    assert.equal(ini.mode, 0o640);
    assert.equal(ini.group, 'kw-shop');
    for (const line of [`socket = ${preflightSocket(site)}`, 'processes = 1', 'chdir = /srv/shop/releases/R7', 'virtualenv = /srv/shop/venvs/abc']) {
      assert.ok(ini.content.split('\n').includes(line), line);
    }
    assert.equal(tasks.sorted()[1]!.stage, 360, 'after the release commands (AFTER_FILES + 50), before the switch');
  });

  it('asks the health check path with the canonical Host, accepting the configured statuses', async () => {
    const { preflightCommand, preflightHealth } = await import('../../plugins/uwsgi/index.ts');
    const site = testSite({ healthcheck: { path: '/health', status: [200, 204], timeout: 5 } });
    assert.deepEqual(preflightHealth(site), { host: 'shop.example', path: '/health', statuses: ['200', '204'], timeoutSeconds: 35 });
    const text = preflightCommand(site, { health: preflightHealth(site) }).text;
    assert.ok(text.includes('env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 /usr/bin/uwsgi --ini /etc/kraftwerk/sites/shop/preflight.ini >"$log" 2>&1 &\n'));
    assert.ok(text.includes(" /run/kraftwerk/shop.preflight.sock shop.example /health 35 2>/dev/null) || status=\ncase \"$status\" in 200|204) echo \"kraftwerk: preflight $status\";;\n"));
    assert.ok(text.includes('setsid env -i PATH='), 'the instance runs in its own process group');
    assert.ok(text.includes(`trap 'if [ -n "$pid" ]; then { kill -KILL -"$pid"`), 'the instance (master and worker) is always stopped');
    assert.equal(spawnSync('sh', ['-n', '-c', text]).status, 0);
    assert.equal(preflightHealth(testSite({ healthcheck: false })), undefined);
    assert.ok(preflightCommand(site).text.endsWith(`echo 'kraftwerk: preflight started'`));
  });

  it('its uwsgi-protocol client reads the status of a real answer', { timeout: 20_000 }, async (t) => {
    if (spawnSync('python3', ['-c', 'import socket']).status !== 0) return t.skip('python3 is not installed on this machine');
    const { preflightCommand } = await import('../../plugins/uwsgi/index.ts');
    const net = await import('node:net');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const text = preflightCommand(testSite(), { health: { host: 'shop.example', path: '/health?deep=1', statuses: ['2??'], timeoutSeconds: 5 } }).text;
    // The client alone: the python3 -c '…' line of the command, pointed at a socket that answers like uWSGI.
    const client = /status=\$\((python3 -c '[\s\S]*?') \/run\/kraftwerk\/shop\.preflight\.sock shop\.example '\/health\?deep=1' 5 2>\/dev\/null\)/.exec(text)![1]!;
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
