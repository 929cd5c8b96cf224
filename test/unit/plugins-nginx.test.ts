import assert from 'node:assert/strict';
import { soloTopology } from '../../core/engine/topology.ts';
import { describe, it } from 'node:test';
import { createHooks } from '../../core/engine/hooks.ts';
import { NodeProbe, RemoteFileSet, SetupPackages } from '../../core/engine/context.ts';
import { emptyFacts } from '../../core/lifecycle/probe.ts';
import { TaskList } from '../../core/engine/tasks.ts';
import nginxPlugin, {
  nginxReloadCommand,
  nginxSetupCommand,
  nginxSitePaths,
  nginxTestCommand,
  renderNginxNodeConf,
  renderNginxSite,
  staticFiles,
  staticFolderCommand,
} from '../../plugins/nginx/index.ts';
import { testSite } from '../helpers/site.ts';

const FULL = `# Kraftwerk: nginx site shop. Written by \`kraftwerk deploy\`; edits are overwritten.
upstream kraftwerk-shop {
    server unix:/srv/shop/current/.kraftwerk/uwsgi.sock;
}

# Aliases answer with a permanent redirect to the canonical domain.
server {
    listen 80;
    listen [::]:80;
    server_name www.shop.example shop.example.org;
    return 301 $scheme://shop.example$request_uri;
}

server {
    listen 80;
    listen [::]:80;
    server_name shop.example shop2.example;

    client_max_body_size 50m;
    access_log /var/log/nginx/kraftwerk-shop.access.log;
    error_log /var/log/nginx/kraftwerk-shop.error.log;

    # No path with a dot segment is served or passed to the app (.kraftwerk/, .git/, .env, .htpasswd),
    # wherever it is; /.well-known/ at the top stays (ACME challenges, security.txt).
    location ~ "^/\\.(?!well-known/)|./\\." {
        return 404;
    }

    location /assets/ {
        alias /srv/shop/current/assets/;
        # The site can write in its release (collectstatic): no symlink below current/ is followed.
        disable_symlinks on from=/srv/shop/current;
        expires 7d;
        add_header Cache-Control "public";
        access_log off;
    }

    # Files users uploaded: never run or render them as this site's pages.
    location /uploads/ {
        alias /srv/shop/shared/uploads/;
        # The site writes here: a symlink it puts here is never followed (to another site, /etc/passwd, its own env).
        disable_symlinks on from=/srv/shop/shared;
        expires 1d;
        add_header X-Content-Type-Options nosniff;
        add_header Content-Security-Policy "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox";
    }

    location / {
        include uwsgi_params;
        uwsgi_pass kraftwerk-shop;
        uwsgi_read_timeout 40s;
    }
}
`;

const MINIMAL = `# Kraftwerk: nginx site shop. Written by \`kraftwerk deploy\`; edits are overwritten.
upstream kraftwerk-shop {
    server unix:/srv/shop/current/.kraftwerk/uwsgi.sock;
}

server {
    listen 80;
    listen [::]:80;
    server_name shop.example;

    client_max_body_size 10m;
    access_log /var/log/nginx/kraftwerk-shop.access.log;
    error_log /var/log/nginx/kraftwerk-shop.error.log;

    # No path with a dot segment is served or passed to the app (.kraftwerk/, .git/, .env, .htpasswd),
    # wherever it is; /.well-known/ at the top stays (ACME challenges, security.txt).
    location ~ "^/\\.(?!well-known/)|./\\." {
        return 404;
    }

    location /static/ {
        alias /srv/shop/current/static/;
        # The site can write in its release (collectstatic): no symlink below current/ is followed.
        disable_symlinks on from=/srv/shop/current;
        expires 30d;
        add_header Cache-Control "public";
        access_log off;
    }

    location / {
        include uwsgi_params;
        uwsgi_pass kraftwerk-shop;
        uwsgi_read_timeout 70s;
    }
}
`;

describe('nginx: site file', () => {
  it('renders domains, alias redirects, static, uploads, body size and the socket', async () => {
    const site = testSite({
      domain: ['shop.example', 'shop2.example'],
      aliases: ['www.shop.example', 'shop.example.org'],
      services: ['files'],
      static: { path: 'assets', url: '/assets', expires: '7d' },
      nginx: { client_max_body_size: '50m' },
      uwsgi: { harakiri: 30, max_requests: 100 },
    });
    assert.equal(await renderNginxSite(site), FULL);
  });

  it('without aliases or files: one server, /static/ from the release, no /uploads/', async () => {
    assert.equal(await renderNginxSite(testSite()), MINIMAL);
  });

  it('reads `static:` as a folder name or an object', () => {
    assert.deepEqual(staticFiles(testSite()), { url: '/static/', dir: '/srv/shop/current/static/', expires: '30d', folder: 'static' });
    assert.deepEqual(staticFiles(testSite({ static: './public/' })), { url: '/static/', dir: '/srv/shop/current/public/', expires: '30d', folder: 'public' });
    assert.deepEqual(staticFiles(testSite({ static: { path: 'build/static', url: '/s/', expires: '1y' } })), {
      url: '/s/',
      dir: '/srv/shop/current/build/static/',
      expires: '1y',
      folder: 'build/static',
    });
  });

  it('node-wide conf: bigger server_names hash, unknown hosts refused', async () => {
    const conf = await renderNginxNodeConf();
    assert.ok(conf.includes('\nserver_names_hash_bucket_size 128;\n'));
    assert.ok(conf.includes('    listen 80 default_server;\n    listen [::]:80 default_server;\n    server_name _;\n    return 444;\n'));
  });
});

describe('nginx: commands', () => {
  it('tests a changed file and puts the last good one back when nginx rejects it (exact command)', () => {
    assert.deepEqual(nginxSitePaths(testSite()), {
      available: '/etc/nginx/sites-available/kraftwerk-shop.conf',
      previous: '/etc/nginx/sites-available/kraftwerk-shop.conf.prev',
      enabled: '/etc/nginx/sites-enabled/kraftwerk-shop.conf',
    });
    assert.equal(
      nginxTestCommand(testSite()).text,
      `if [ -L /etc/nginx/sites-enabled/kraftwerk-shop.conf ] && cmp -s /etc/nginx/sites-available/kraftwerk-shop.conf /etc/nginx/sites-available/kraftwerk-shop.conf.prev; then echo 'kraftwerk: nginx unchanged'; exit 0; fi
ln -sfn /etc/nginx/sites-available/kraftwerk-shop.conf /etc/nginx/sites-enabled/kraftwerk-shop.conf
if out=$(nginx -t 2>&1); then echo 'kraftwerk: nginx changed'; exit 0; fi
if [ -f /etc/nginx/sites-available/kraftwerk-shop.conf.prev ]; then cp -p /etc/nginx/sites-available/kraftwerk-shop.conf.prev /etc/nginx/sites-available/kraftwerk-shop.conf; else rm -f /etc/nginx/sites-enabled/kraftwerk-shop.conf /etc/nginx/sites-available/kraftwerk-shop.conf; fi
printf '%s\\n' "$out" >&2
exit 1`,
    );
  });

  it('reloads (or starts) nginx, then records the file as the running one', () => {
    assert.equal(
      nginxReloadCommand(testSite()).text,
      'if service nginx status >/dev/null 2>&1; then service nginx reload >/dev/null; else service nginx start >/dev/null; fi && cp -p /etc/nginx/sites-available/kraftwerk-shop.conf /etc/nginx/sites-available/kraftwerk-shop.conf.prev',
    );
  });

  it('setup removes the default site and starts nginx', () => {
    const text = nginxSetupCommand({ confChanged: false }).text;
    assert.ok(text.includes(`if [ -e /etc/nginx/sites-enabled/default ]; then rm -f /etc/nginx/sites-enabled/default; echo 'removed the default nginx site'; changed=1; fi\nnginx -t -q\n`));
    assert.ok(text.startsWith('set -e\nchanged=\n'));
    assert.ok(nginxSetupCommand({ confChanged: true }).text.startsWith('set -e\nchanged=1\n'));
  });
});

describe('nginx: plugin', () => {
  async function collect(site = testSite()) {
    const hooks = createHooks();
    nginxPlugin.apply!(hooks, site);
    const packages = new SetupPackages();
    await hooks.setupNode.promise({} as never, new TaskList('setupNode') as never, packages);
    const configure = new TaskList<never>('configure');
    await hooks.configure.promise({ probe: new NodeProbe() } as never, configure as never);
    const restart = new TaskList<never>('restart');
    await hooks.restart.promise({ probe: new NodeProbe() } as never, restart as never);
    return { packages, configure: configure.sorted(), restart: restart.sorted() };
  }

  it('writes the site file only after the switch; tests and reloads it when it is not the one nginx runs with', async () => {
    const { packages, configure, restart } = await collect();
    assert.deepEqual(packages.names, ['nginx']);
    const ctx = { node: 'web1', topology: soloTopology('web1'), files: new RemoteFileSet(), state: new Map<string, unknown>(), facts: emptyFacts() };
    assert.deepEqual(configure.map((t) => t.title), ['static folder', 'nginx site']);
    await configure[1]!.run(ctx as never, { title() {}, output() {}, skip() {} });
    assert.deepEqual(
      ctx.files.all.map((f) => [f.path, f.content, f.atSwitch]),
      [['/etc/nginx/sites-available/kraftwerk-shop.conf', MINIMAL, true]],
      'written by the switch, not before',
    );
    const reload = restart[0]!;
    assert.equal(reload.title, 'reload nginx');
    assert.equal(reload.stage, 500);
    assert.equal(await reload.skip!(ctx as never), false, 'a first deploy: no file nginx ran with');
    ctx.facts.files.set('/etc/nginx/sites-available/kraftwerk-shop.conf.prev', MINIMAL);
    ctx.facts.exists.add('/etc/nginx/sites-enabled/kraftwerk-shop.conf');
    ctx.facts.files.set('/etc/group', 'kw-shop:x:998:\nwww-data:x:33:\nkwn-shop:x:997:kw-shop,www-data\n');
    assert.equal(await reload.skip!(ctx as never), 'nginx site (unchanged)');
    ctx.facts.files.set('/etc/group', 'kw-shop:x:998:www-data\nwww-data:x:33:\n');
    assert.equal(await reload.skip!(ctx as never), false, 'a node of an earlier Kraftwerk: www-data changes groups, the workers must reload');
    ctx.facts.files.set('/etc/group', 'kw-shop:x:998:\nwww-data:x:33:\nkwn-shop:x:997:kw-shop,www-data\n');
    ctx.files.changed.add('/etc/nginx/sites-available/kraftwerk-shop.conf');
    assert.equal(await reload.skip!(ctx as never), false, 'a rollback put back another file');
  });
});

describe('nginx: the static folder of a new release', () => {
  it('gives it (and the folders above it) the web group, creates a missing one for collectstatic, changes nothing through a symlink', () => {
    assert.equal(
      staticFolderCommand(testSite({ static: 'build/static' }), '/srv/shop/releases/R1').text,
      `if [ -L /srv/shop/releases/R1/build ]; then echo 'kraftwerk: build is a symlink in the release: nginx does not follow it, /static/ answers 403' >&2; exit 0; elif [ -d /srv/shop/releases/R1/build ]; then chgrp -h kwn-shop /srv/shop/releases/R1/build; else install -d -m 0750 -o root -g kwn-shop /srv/shop/releases/R1/build; fi
if [ -L /srv/shop/releases/R1/build/static ]; then echo 'kraftwerk: build/static is a symlink in the release: nginx does not follow it, /static/ answers 403' >&2
elif [ -d /srv/shop/releases/R1/build/static ]; then chgrp -hR kwn-shop /srv/shop/releases/R1/build/static
else install -d -m 2750 -o kw-shop -g kwn-shop /srv/shop/releases/R1/build/static; fi`,
    );
  });
});

describe('nginx: values from kraftwerk.yaml', () => {
  const hostile = {
    'static.path': ['.', '..', '../other', 'static/../.kraftwerk', '.kraftwerk', 'a b', 'x;}', 'x{', '$document_root', "a'b", 'a"b', 'a\nb', 'a\u0000b'],
    'static.url': ['/s;', '/s {', '/$uri/', 'relative/', '/a b/', '/.git/', '/x/../'],
    'nginx.client_max_body_size': ['10m;', '1 g', '$x'],
    'static.expires': ['30d;', '1d }', 'max; return 200', '$x', '30 d'],
  };
  for (const [key, values] of Object.entries(hostile)) {
    for (const value of values) {
      it(`refuses ${key} ${JSON.stringify(value)} naming the key`, async () => {
        // Past the config schema (which checks these first): this is the check where the values are pasted.
        const base = testSite();
        const [section, field] = key.split('.') as [string, string];
        const defaults: Record<string, unknown> = section === 'static' ? { path: 'static', url: '/static/', expires: '30d' } : {};
        const site = { ...base, settings: { ...base.settings, [section]: { ...defaults, [field]: value } } } as typeof base;
        await assert.rejects(renderNginxSite(site), (err: Error) => err.message.includes(key));
      });
    }
  }

  it('takes ordinary values', async () => {
    const site = testSite({ static: { path: 'build/static-files', url: '/assets/v2/', expires: '1h30m' } });
    assert.ok((await renderNginxSite(site)).includes('    location /assets/v2/ {\n        alias /srv/shop/current/build/static-files/;\n'));
  });
});

describe('nginx: TLS (SiteTls from the tls plugin)', () => {
  const site = testSite({ aliases: ['www.shop.example'] });
  const tls = { acmeWebroot: '/var/lib/kraftwerk/acme/shop', hstsMaxAge: 600, protocols: ['TLSv1.2', 'TLSv1.3'], ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' };
  const certificate = { fullchain: '/etc/ssl/shop/fullchain.pem', privateKey: '/etc/ssl/shop/privkey.pem' };
  const acmeLocation =
    "    # HTTP-01 challenges of the site's certificate (also on aliases: every name is on it).\n" +
    '    location /.well-known/acme-challenge/ {\n        root /var/lib/kraftwerk/acme/shop;\n        default_type text/plain;\n    }\n';

  it('before a certificate exists: plain HTTP, with the challenge location on every name', async () => {
    const conf = await renderNginxSite(site, tls);
    assert.ok(!conf.includes('443'), 'nothing on 443 without a certificate');
    assert.equal(conf.split(acmeLocation).length - 1, 2, 'the alias server and the site server answer challenges');
    assert.ok(conf.includes('    location / {\n        return 301 $scheme://shop.example$request_uri;\n    }\n'));
  });

  it('with a certificate: HTTPS on 443, HTTP and aliases redirect to https://<canonical> in one hop, HSTS everywhere', async () => {
    const conf = await renderNginxSite(site, { ...tls, certificate });
    assert.ok(conf.includes(`server {\n    listen 80;\n    listen [::]:80;\n    server_name shop.example www.shop.example;\n${acmeLocation}    location / {\n        return 301 https://shop.example$request_uri;\n    }\n}\n`));
    assert.equal(conf.split('    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n').length - 1, 2);
    assert.equal(conf.split('ssl_certificate /etc/ssl/shop/fullchain.pem;').length - 1, 2);
    assert.ok(conf.includes('    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;\n'));
    // add_header in a location replaces the server's headers: HSTS is repeated where locations add their own.
    assert.equal(conf.split('add_header Strict-Transport-Security "max-age=600" always;').length - 1, 3);
    assert.ok(conf.includes('    server_name www.shop.example;\n'));
  });

  it('no HSTS header when its max-age is 0', async () => {
    const conf = await renderNginxSite(site, { ...tls, hstsMaxAge: 0, certificate });
    assert.ok(!conf.includes('Strict-Transport-Security'));
  });
});
