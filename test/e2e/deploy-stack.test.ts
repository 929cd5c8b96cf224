/**
 * The stack end to end (issue 4): a sandbox set up with `kraftwerk setup-node`,
 * both example projects deployed with the real CLI, and HTTP checks from this
 * machine through the node's nginx: pages, static files with caching headers,
 * alias redirects, uploads, PostgreSQL and Redis round trips, a redeploy that
 * shows a change, two sites kept apart, and bad input stopped before anything
 * changes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseDocument } from 'yaml';
import { REPO_ROOT, runCli, sandboxSkip, type CliResult } from './harness.ts';
import { onNode, printed, withSetUpNodes, type SafeProject } from './safe-helpers.ts';

// KRAFTWERK_E2E_STACK_NODE: another name, so that two checkouts can run this suite at once.
const NODE = process.env.KRAFTWERK_E2E_STACK_NODE ?? 'stack-one';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTP request to the node's nginx with `host` as Host header, as a browser would send it. */
function http(address: string, host: string, urlPath: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: address, port: 80, path: urlPath, method: options.method ?? 'GET', headers: { Host: host, ...options.headers }, agent: false, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${address}${urlPath} within 15 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

function multipart(field: string, filename: string, content: Buffer): { body: Buffer; headers: Record<string, string> } {
  const boundary = `kraftwerk${randomBytes(8).toString('hex')}`;
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    content,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': String(body.length) } };
}

/** A throwaway copy of an example project, edited between deploys. */
class Project {
  readonly dir: string;
  constructor(t: TestContext, example: string) {
    this.dir = mkdtempSync(path.join(tmpdir(), `kw-${example}-`));
    t.after(() => rmSync(this.dir, { recursive: true, force: true }));
    cpSync(path.join(REPO_ROOT, 'examples', example), this.dir, { recursive: true });
    // The site is named after the example, not after the temporary folder.
    this.editConfig((doc) => doc.set('package', example));
  }
  file(name: string): string {
    return path.join(this.dir, name);
  }
  editConfig(edit: (doc: ReturnType<typeof parseDocument>) => void): void {
    const doc = parseDocument(readFileSync(this.file('kraftwerk.yaml'), 'utf8'));
    edit(doc);
    writeFileSync(this.file('kraftwerk.yaml'), doc.toString());
  }
  cli(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<CliResult> {
    return runCli(args, { cwd: this.dir, ...options });
  }
  async deploy(extra: readonly string[] = []): Promise<CliResult> {
    const r = await this.cli(['deploy', NODE, ...extra], { timeoutMs: 15 * 60_000 });
    assert.equal(r.code, 0, `kraftwerk deploy ${NODE} in ${path.basename(this.dir)}:\n${printed(r)}`);
    return r;
  }
}

const text = (r: Reply) => r.body.toString('utf8');

describe('the stack: setup-node and deploy of the examples', { skip: sandboxSkip() }, () => {
  it('deploys flask-hello and django-site to one sandbox and serves them through nginx', { timeout: 60 * 60_000 }, async (t) => {
    // setup-node runs outside any project: the node gets the stack, not one site's packages.
    const outside = { cli: (args: readonly string[], o: { timeoutMs?: number } = {}) => runCli(args, { cwd: tmpdir(), ...o }) } as unknown as SafeProject;
    await withSetUpNodes(t, outside, [NODE], async ([node]) => {
      const address = node!.address;
      const flask = new Project(t, 'flask-hello');
      const django = new Project(t, 'django-site');

      await t.test('a second setup-node changes nothing and says so', async () => {
        const r = await runCli(['setup-node', NODE], { cwd: tmpdir(), timeoutMs: 10 * 60_000 });
        assert.equal(r.code, 0, printed(r));
        assert.match(r.stdout + r.stderr, /already set up, nothing changed/);
      });

      await t.test('flask-hello: page, static file, alias, uploads, PostgreSQL, Redis', async () => {
        await flask.deploy();
        const host = 'flask-hello.test';

        const page = await http(address, host, '/');
        assert.equal(page.status, 200);
        assert.match(text(page), /<h1>Hello from Kraftwerk<\/h1>/);

        const css = await http(address, host, '/static/style.css');
        assert.equal(css.status, 200);
        assert.equal(text(css), readFileSync(flask.file('static/style.css'), 'utf8'));
        assert.match(String(css.headers['cache-control']), /max-age=2592000/);
        assert.ok(css.headers.expires, 'static files carry an Expires header');

        const alias = await http(address, 'www.flask-hello.test', '/some/page?x=1');
        assert.equal(alias.status, 301);
        assert.equal(alias.headers.location, 'http://flask-hello.test/some/page?x=1');

        const content = randomBytes(4096);
        const form = multipart('file', 'round trip.bin', content);
        const up = await http(address, host, '/upload', { method: 'POST', body: form.body, headers: form.headers });
        assert.equal(up.status, 201, text(up));
        assert.equal(text(up).trim(), '/uploads/round_trip.bin');
        const back = await http(address, host, '/uploads/round_trip.bin');
        assert.equal(back.status, 200);
        assert.ok(back.body.equals(content), 'the uploaded bytes come back unchanged from /uploads/');
        assert.equal(back.headers['x-content-type-options'], 'nosniff');

        const db1 = text(await http(address, host, '/db'));
        const db2 = text(await http(address, host, '/db'));
        assert.match(db1, /^visits=\d+ user=kw-flask-hello database=flask-hello\n$/);
        assert.equal(Number(/visits=(\d+)/.exec(db2)![1]), Number(/visits=(\d+)/.exec(db1)![1]) + 1, 'PostgreSQL keeps what the site wrote');

        const r1 = Number(/counter=(\d+)/.exec(text(await http(address, host, '/redis')))![1]);
        const r2 = Number(/counter=(\d+)/.exec(text(await http(address, host, '/redis')))![1]);
        assert.equal(r2, r1 + 1, 'the Redis counter goes up');

        const unknown = await http(address, 'nobody.test', '/').catch((e: Error) => e);
        assert.ok(unknown instanceof Error || unknown.status >= 400, 'a host no site serves gets no site');
      });

      await t.test('flask-hello: a changed file and a changed environment show after a redeploy; uploads and data stay', async () => {
        writeFileSync(flask.file('static/style.css'), `${readFileSync(flask.file('static/style.css'), 'utf8')}/* v2 */\n`);
        flask.editConfig((doc) => doc.setIn(['environ', 'GREETING'], `Hello again, it's "v2" $(id) %(chdir)`));
        await flask.deploy();
        const host = 'flask-hello.test';
        assert.match(text(await http(address, host, '/')), /<h1>Hello again, it's "v2" \$\(id\) %\(chdir\)<\/h1>/);
        assert.match(text(await http(address, host, '/static/style.css')), /\/\* v2 \*\//);
        assert.equal((await http(address, host, '/uploads/round_trip.bin')).status, 200);
        assert.match(text(await http(address, host, '/db')), /visits=[3-9]/);
      });

      await t.test('a deploy with no change is no deploy; forced, it reuses the venv and keeps nginx as it is', async () => {
        assert.match(printed(await flask.deploy()), /already live: \S+ \(no change\)/);
        const r = await flask.deploy(['--force']);
        const out = printed(r);
        assert.match(out, /virtualenv venvs\/[0-9a-f]{16} \(reused\)/);
        assert.match(out, /nginx site \(unchanged\)/);
        assert.match(out, /PostgreSQL database flask-hello \(unchanged\)/);
        assert.match(out, /Redis user kw-flask-hello \(unchanged\)/);
      });

      await t.test('django-site: migrations and collectstatic as release commands, a model page', async () => {
        await django.deploy();
        const host = 'django-site.test';
        const page = await http(address, host, '/');
        assert.equal(page.status, 200, text(page));
        assert.match(text(page), /<h1>Notes<\/h1>/);

        const css = await http(address, host, '/static/notes/style.css');
        assert.equal(css.status, 200, 'collectstatic put the app static files where nginx serves them');
        assert.match(String(css.headers['cache-control']), /max-age=2592000/);

        // Add a note through the form, with Django's CSRF cookie and token.
        const token = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(text(page))![1]!;
        const cookie = String(page.headers['set-cookie']).split(';')[0]!;
        const note = `note ${randomBytes(4).toString('hex')}`;
        const body = Buffer.from(new URLSearchParams({ csrfmiddlewaretoken: token, text: note }).toString());
        const posted = await http(address, host, '/', {
          method: 'POST',
          body,
          headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': String(body.length), Referer: `http://${host}/` },
        });
        assert.equal(posted.status, 302, text(posted));
        assert.match(text(await http(address, host, '/')), new RegExp(`<li>${note}</li>`));
      });

      await t.test('two sites on one node do not see each other', async () => {
        const out = await onNode(
          NODE,
          [
            // Files: code, environment and uploads of the other site are closed.
            `runuser -u kw-flask-hello -- cat /srv/django-site/current/.kraftwerk/env 2>&1 && echo LEAK-env || echo denied-env`,
            `runuser -u kw-flask-hello -- ls /srv/django-site/current/ 2>&1 && echo LEAK-code || echo denied-code`,
            `runuser -u kw-django-site -- ls /srv/flask-hello/shared/uploads/ 2>&1 && echo LEAK-uploads || echo denied-uploads`,
            // PostgreSQL: peer authentication lets a site in only as its own role, and not into the other database.
            `cd / && runuser -u kw-flask-hello -- psql -X 'postgresql:///django-site?host=/var/run/postgresql' -c 'select 1' 2>&1 && echo LEAK-db || echo denied-db`,
            `cd / && runuser -u kw-flask-hello -- psql -X 'postgresql://kw-django-site@/django-site?host=/var/run/postgresql' -c 'select 1' 2>&1 && echo LEAK-role || echo denied-role`,
            // Redis: no anonymous access; the site's user reaches only its own keys.
            `redis-cli -h 127.0.0.1 get flask-hello:counter 2>&1 | grep -q NOAUTH && echo denied-anonymous || echo LEAK-anonymous`,
            `url=$(cat /srv/flask-hello/current/.kraftwerk/environ/REDIS_URL); redis-cli -u "$url" --no-auth-warning set django-site:x 1 2>&1 | grep -q NOPERM && echo denied-keys || echo LEAK-keys`,
            `url=$(cat /srv/flask-hello/current/.kraftwerk/environ/REDIS_URL); redis-cli -u "$url" --no-auth-warning get flask-hello:counter`,
          ].join('\n'),
        );
        for (const what of ['env', 'code', 'uploads', 'db', 'role', 'anonymous', 'keys']) {
          assert.ok(out.includes(`denied-${what}`), `${what} of another site must be out of reach:\n${out}`);
          assert.ok(!out.includes(`LEAK-${what}`), out);
        }
      });

      await t.test('a config nginx rejects is not loaded; the previous file is put back', async () => {
        const site = '/etc/nginx/sites-available/kraftwerk-flask-hello.conf';
        const before = await onNode(NODE, `cat ${site}`);
        // Another file nginx includes is broken, so `nginx -t` fails whatever our file says.
        await onNode(NODE, `echo 'this is not nginx syntax' > /etc/nginx/sites-enabled/zz-broken.conf`);
        try {
          flask.editConfig((doc) => doc.set('nginx', { client_max_body_size: '20m' }));
          const r = await flask.cli(['deploy', NODE], { timeoutMs: 10 * 60_000 });
          assert.equal(r.code, 1, printed(r));
          assert.match(printed(r), /nginx rejected the site config/);
          assert.equal(await onNode(NODE, `cat ${site}`), before, 'the file nginx runs with is back');
          assert.equal((await http(address, 'flask-hello.test', '/health')).status, 200, 'the site still serves');
        } finally {
          await onNode(NODE, 'rm -f /etc/nginx/sites-enabled/zz-broken.conf');
        }
        await flask.deploy();
        assert.match(await onNode(NODE, `cat ${site}`), /client_max_body_size 20m;/);
      });

      await t.test('bad input stops the deploy before anything changes on the node', async () => {
        const releases = () => onNode(NODE, 'ls /srv/flask-hello/releases | wc -l');
        const count = await releases();

        unlinkSync(flask.file('requirements.txt'));
        let r = await flask.cli(['deploy', NODE]);
        assert.equal(r.code, 2, printed(r));
        assert.match(printed(r), /no requirements\.txt or pyproject\.toml in /);
        writeFileSync(flask.file('requirements.txt'), '');

        flask.editConfig((doc) => doc.set('wsgi', 'nosuchmodule:app'));
        r = await flask.cli(['deploy', NODE]);
        assert.notEqual(r.code, 0);
        assert.match(printed(r), /module nosuchmodule not found/);
        flask.editConfig((doc) => doc.set('wsgi', 'app:app'));

        flask.editConfig((doc) => doc.set('services', ['files', 'postgres', 'redis', 'memcached']));
        r = await flask.cli(['deploy', NODE]);
        assert.equal(r.code, 2, printed(r));
        assert.match(printed(r), /memcached/);
        flask.editConfig((doc) => doc.set('services', ['files', 'postgres', 'redis']));

        // Another site that wants flask-hello's domain.
        const thief = new Project(t, 'flask-hello');
        thief.editConfig((doc) => doc.set('package', 'thief'));
        r = await thief.cli(['deploy', NODE]);
        assert.notEqual(r.code, 0);
        assert.match(printed(r), /flask-hello\.test.*already used by site flask-hello/);
        assert.equal(await onNode(NODE, 'test -e /srv/thief && echo exists || echo absent'), 'absent\n');

        assert.equal(await releases(), count, 'no release was made by a refused deploy');
        await flask.deploy();
      });
    });
  });
});
