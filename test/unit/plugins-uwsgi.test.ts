import assert from 'node:assert/strict';
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
    const ctx = { files: new RemoteFileSet(), env: { GREETING: 'hi' }, facts: { env: {} } };
    const titles: string[] = [];
    for (const t of tasks.sorted()) await t.run(ctx as never, { title: (s: string) => titles.push(s), output() {}, skip() {} });
    assert.deepEqual(
      ctx.files.all.map((f) => [f.path, f.mode, f.owner, f.group]),
      [
        ['/etc/kraftwerk/sites/shop/uwsgi.ini', 0o640, 'root', 'kw-shop'],
        ['/etc/kraftwerk/sites/shop/env/GREETING', 0o640, 'root', 'kw-shop'],
      ],
    );
    assert.deepEqual(titles, ['uWSGI configuration (2 workers, 1 environment variables)']);
  });
});
