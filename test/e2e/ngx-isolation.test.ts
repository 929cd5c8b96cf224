/**
 * What nginx can read and serve of a site (issue 12 item 3) and when the nginx
 * site file changes (issue 13 item 4), on one sandbox with two sites, A and B
 * (service `files`). A's own code and user try to get B's secrets (and
 * /etc/passwd, and A's own environment) out through nginx with symlinks in its
 * uploads and its static folder, and with dot paths; www-data and A's user try
 * B's files and socket directly. B starts from the layout of an earlier
 * Kraftwerk (www-data in B's own group), recreated on the node, and its next
 * deploy migrates it. A first deploy that fails in its release commands leaves
 * no nginx site behind. Real sandbox, real CLI, HTTP from this machine.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { runCli, sandboxSkip, withPreparedSandbox, type CliResult } from './harness.ts';
import { onNode, printed, SAFE_FIXTURE, setupRecipe } from './safe-helpers.ts';

const NODE = 'ngx-one';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Tenant {
  name: string;
  domain: string;
  secret: string;
  dir: string;
  cli(args: readonly string[]): Promise<CliResult>;
}

/** A project made from the safe-site fixture app: its own name, domain, secret, uploads and static files. */
function tenant(t: TestContext, name: string, options: { release?: string[]; shipStatic?: boolean } = {}): Tenant {
  const dir = mkdtempSync(path.join(tmpdir(), `kw-ngx-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['app.py', 'requirements.txt', 'version.txt']) cpSync(path.join(SAFE_FIXTURE, f), path.join(dir, f));
  const secret = `ngx-secret-${name}-${randomBytes(8).toString('hex')}`;
  if (options.shipStatic) {
    mkdirSync(path.join(dir, 'static'));
    writeFileSync(path.join(dir, 'static', 'hello.txt'), `static of ${name}\n`);
  }
  const domain = `${name}.ngx.test`;
  const config = {
    package: name,
    domain,
    wsgi: 'app:application',
    workers: 1,
    services: ['files'],
    static: 'static',
    healthcheck: { path: '/health', timeout: 5, retries: 2 },
    environ: { NGX_SECRET: secret },
    ...(options.release ? { release: options.release } : {}),
  };
  writeFileSync(path.join(dir, 'kraftwerk.yaml'), stringify(config));
  return { name, domain, secret, dir, cli: (args) => runCli(args, { cwd: dir, timeoutMs: 20 * 60_000 }) };
}

interface Answer {
  status?: number;
  body: string;
  error?: string;
}

/** GET `urlPath` exactly as written (no normalisation by the client) with Host `host`. */
function get(address: string, host: string, urlPath: string): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request({ host: address, port: 80, path: urlPath, headers: { Host: host }, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (e) => resolve({ body: '', error: e.message }));
    req.end();
  });
}

async function deployOk(site: Tenant, extra: string[] = []): Promise<void> {
  const r = await site.cli(['deploy', NODE, ...extra]);
  assert.equal(r.code, 0, `kraftwerk deploy ${NODE} (${site.name}):\n${printed(r)}`);
}

/** Run `script` on the node; its exit code and output (no assertion). */
async function tryOnNode(script: string): Promise<CliResult> {
  return runCli(['sandbox', 'ssh', NODE, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
}

/** The supplementary groups of every nginx worker (www-data's nginx processes), one line each. */
const WORKER_GROUPS = `uid=$(id -u www-data)
for s in /proc/[0-9]*/status; do
  grep -qx 'Name:[[:space:]]*nginx' "$s" 2>/dev/null || continue
  grep -q "^Uid:[[:space:]]*$uid[[:space:]]" "$s" || continue
  grep '^Groups:' "$s"
done`;

/** Wait (bounded) until every nginx worker has, or has not, the group `group`: a reload replaces workers asynchronously. */
async function workersHaveGroup(group: string, expected: boolean): Promise<void> {
  const gid = (await onNode(NODE, `getent group ${group} | cut -d: -f3`)).trim();
  let last = '';
  for (let i = 0; i < 40; i++) {
    last = await onNode(NODE, WORKER_GROUPS);
    const lines = last.split('\n').filter(Boolean);
    const has = lines.map((l) => l.split(/\s+/).slice(1).includes(gid));
    if (lines.length && has.every((h) => h === expected)) return;
    await sleep(250);
  }
  assert.fail(`nginx workers ${expected ? 'lack' : 'still have'} group ${group} (${gid}):\n${last}`);
}

/**
 * The layout an earlier Kraftwerk left: www-data in the site's own group, the
 * site's folders and release folders in that group (1775), code readable by
 * all, the socket www-data's, the uploads the site's group's; no web group
 * members; provision notes of the old commands; nginx reloaded with those groups.
 */
function oldLayoutScript(site: string): string {
  const u = `kw-${site}`;
  return `set -e
usermod -aG ${u} www-data
gpasswd -d www-data kwn-${site} >/dev/null
gpasswd -d ${u} kwn-${site} >/dev/null
chgrp ${u} /srv/${site} /srv/${site}/releases /srv/${site}/shared
for r in /srv/${site}/releases/*/; do
  chmod 1775 "$r"; find "$r" -path "$r/.kraftwerk" -prune -o ! -type l -exec chmod o+rX {} +; chgrp -h ${u} "$r/.kraftwerk"; chgrp -h www-data "$r/.kraftwerk/uwsgi.sock"
  chgrp -hR ${u} "$r/static"
done
chown -hR ${u}:${u} /srv/${site}/shared/uploads; chmod 0750 /srv/${site}/shared/uploads
rm -f /srv/${site}/.kraftwerk/provisioned/site /srv/${site}/.kraftwerk/provisioned/uploads
service nginx reload >/dev/null`;
}

describe('nginx reads only what it serves', { skip: sandboxSkip() }, () => {
  it('two sites on one node', { timeout: 60 * 60_000 }, async (t) => {
    // A makes its static folder in a release command (as collectstatic does) and plants links and a dotfile there.
    const a = tenant(t, 'ngxa', {
      release: [
        'echo static of ngxa > static/hello.txt && echo dotfile > static/.hidden && ' +
          'ln -s /srv/ngxb/current/.kraftwerk/env static/b-env && ln -s /etc/passwd static/passwd && ln -s ../.kraftwerk/env static/own-env',
      ],
    });
    const b = tenant(t, 'ngxb', { shipStatic: true });
    await withPreparedSandbox(t, NODE, setupRecipe(), async (sandbox) => {
      const address = sandbox.address;
      const setup = await b.cli(['setup-node', NODE]);
      assert.equal(setup.code, 0, `kraftwerk setup-node ${NODE}:\n${printed(setup)}`);
      const bEnv = '/srv/ngxb/current/.kraftwerk/env';

      await t.test('a node of an earlier Kraftwerk is migrated by the next deploy', async (st) => {
        await deployOk(b);
        await onNode(NODE, oldLayoutScript('ngxb'));
        await workersHaveGroup('kw-ngxb', true);
        const leak = await tryOnNode(`runuser -u www-data -- cat ${bEnv}`);
        assert.ok(leak.code === 0 && leak.stdout.includes(b.secret), `in the old layout www-data reads B's environment (else this proves nothing):\n${printed(leak)}`);

        // The same Kraftwerk and project: only --force deploys (an upgrade of Kraftwerk changes the fingerprint itself).
        await deployOk(b, ['--force']);
        await st.test("www-data left B's own group and is in B's web group", async () => {
          const groups = (await onNode(NODE, 'id -nG www-data')).trim().split(/\s+/);
          assert.ok(!groups.includes('kw-ngxb') && groups.includes('kwn-ngxb'), `id -nG www-data: ${groups.join(' ')}`);
        });
        await st.test("nginx's workers were reloaded with the new groups", async () => {
          await workersHaveGroup('kw-ngxb', false);
          await workersHaveGroup('kwn-ngxb', true);
        });
        await st.test("www-data cannot read B's environment any more", async () => {
          const r = await tryOnNode(`runuser -u www-data -- cat ${bEnv}`);
          assert.notEqual(r.code, 0, printed(r));
          assert.ok(!r.stdout.includes(b.secret));
        });
      });

      await deployOk(a);
      // Uploads: a real file each, and A's links to B's environment, /etc/passwd and A's own environment.
      await onNode(
        NODE,
        `set -e
runuser -u kw-ngxb -- sh -c 'umask 027; echo upload of ngxb > /srv/ngxb/shared/uploads/u.txt'
runuser -u kw-ngxa -- sh -c 'umask 027; cd /srv/ngxa/shared/uploads && echo upload of ngxa > u.txt && echo dotfile > .hidden &&
  ln -s ${bEnv} b-env && ln -s /etc/passwd passwd && ln -s /srv/ngxa/current/.kraftwerk/env own-env && ln -s /srv/ngxb/shared/uploads b-uploads'`,
      );

      await t.test('static files and uploads still serve', async () => {
        for (const [site, p, body] of [
          [a, '/static/hello.txt', 'static of ngxa\n'],
          [b, '/static/hello.txt', 'static of ngxb\n'],
          [a, '/uploads/u.txt', 'upload of ngxa\n'],
          [b, '/uploads/u.txt', 'upload of ngxb\n'],
        ] as const) {
          const r = await get(address, site.domain, p);
          assert.deepEqual([r.status, r.body], [200, body], `GET ${p} (Host: ${site.domain}): ${JSON.stringify(r)}`);
        }
      });

      await t.test('links and dot paths never serve a file', async () => {
        const secrets = [a.secret, b.secret, 'root:x:0:0', 'upload of ngxb', 'dotfile'];
        const paths = [
          '/uploads/b-env', '/uploads/passwd', '/uploads/own-env', '/uploads/b-uploads/u.txt', '/uploads/.hidden',
          '/static/b-env', '/static/passwd', '/static/own-env', '/static/.hidden',
          '/.kraftwerk/env', '/.git/config', '/static/../.kraftwerk/env', '/static/%2e%2e/.kraftwerk/env', '/uploads/../../current/.kraftwerk/env',
        ];
        for (const p of paths) {
          const r = await get(address, a.domain, p);
          // 400: nginx refuses a path that climbs above the root.
          assert.ok(r.status === 400 || r.status === 403 || r.status === 404, `GET ${p} (Host: ${a.domain}) answered ${r.status ?? r.error}: ${r.body.slice(0, 200)}`);
          for (const s of secrets) assert.ok(!r.body.includes(s), `GET ${p} leaked ${JSON.stringify(s)}`);
        }
      });

      await t.test("www-data reads B's static files and socket, not its environment or code", async () => {
        const ok = await tryOnNode('runuser -u www-data -- cat /srv/ngxb/current/static/hello.txt');
        assert.equal(ok.code, 0, `positive control:\n${printed(ok)}`);
        for (const f of [bEnv, '/srv/ngxb/current/app.py', '/srv/ngxb/current/.kraftwerk/uwsgi.ini']) {
          const r = await tryOnNode(`runuser -u www-data -- cat ${f}`);
          assert.notEqual(r.code, 0, `www-data read ${f}:\n${printed(r)}`);
        }
      });

      const connect = (user: string) =>
        tryOnNode(`runuser -u ${user} -- python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' /srv/ngxb/current/.kraftwerk/uwsgi.sock`);
      await t.test("A's user cannot connect to B's uWSGI socket (nginx can)", async () => {
        const nginx = await connect('www-data');
        assert.equal(nginx.code, 0, `positive control:\n${printed(nginx)}`);
        const r = await connect('kw-ngxa');
        assert.notEqual(r.code, 0, printed(r));
      });

      await t.test("A's user reads none of B's files", async () => {
        for (const f of [bEnv, '/srv/ngxb/current/app.py', '/srv/ngxb/current/static/hello.txt', '/srv/ngxb/shared/uploads/u.txt']) {
          const r = await tryOnNode(`runuser -u kw-ngxa -- cat ${f}`);
          assert.notEqual(r.code, 0, `kw-ngxa read ${f}:\n${printed(r)}`);
        }
      });

      await t.test('nothing in the new release is open to others but the folder itself (x, for nginx)', async () => {
        const open = await onNode(NODE, `cd /srv/ngxb/current/ && find . ! -type l -perm /o=rw -print | head -20; stat -c '%a %U:%G' .`);
        assert.equal(open.trim(), '1771 root:kw-ngxb', `files others may read or write, and the release folder's mode:\n${open}`);
      });

      await t.test('a first deploy that fails in its release commands leaves no nginx site behind', async () => {
        const c = tenant(t, 'ngxc', { release: ['false'] });
        const r = await c.cli(['deploy', NODE]);
        assert.notEqual(r.code, 0, printed(r));
        const left = await onNode(NODE, 'ls /etc/nginx/sites-available /etc/nginx/sites-enabled | grep ngxc || true');
        assert.equal(left.trim(), '', `nginx files of the failed site:\n${left}`);
        await onNode(NODE, 'nginx -t -q && service nginx reload >/dev/null');
        for (const site of [a, b]) {
          const page = await get(address, site.domain, '/');
          assert.equal(page.status, 200, `GET / (Host: ${site.domain}) after the failed deploy: ${JSON.stringify(page)}`);
        }
      });
    });
  });
});
