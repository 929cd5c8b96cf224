/**
 * Previews on one sandbox node (issue 17): the Django example (PostgreSQL,
 * Redis, uploads) deployed as the main site, then `deploy --preview feat1
 * --with-data` serves at feat1.<domain> with the main site's notes and
 * uploads, as a site of its own (its user, database role, Redis user); the
 * main site still answers; `previews` lists it with its age; `destroy
 * --preview feat1 --yes` removes all of it and leaves the main site serving.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { REPO_ROOT, runCli, sandboxSkip, withPreparedSandbox, type CliResult } from './harness.ts';
import { describeAnswer, get, onNode, printed, setupRecipe } from './safe-helpers.ts';

const NODE = 'pv-a';
const SITE = 'django-site';
const DOMAIN = 'django-site.test';
const PREVIEW = { name: 'feat1', site: 'django-site-feat1', user: 'kw-django-site-feat1', domain: 'feat1.django-site.test' };
const NOTE = 'a note written on the main site';
const UPLOAD = 'an upload of the main site';

/** The Django example in a folder named like it, with uploads and Redis besides PostgreSQL. */
function project(t: TestContext): string {
  const parent = mkdtempSync(path.join(tmpdir(), 'kw-pv-'));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  const dir = path.join(parent, SITE);
  mkdirSync(dir);
  cpSync(path.join(REPO_ROOT, 'examples', SITE), dir, { recursive: true });
  const config = path.join(dir, 'kraftwerk.yaml');
  writeFileSync(config, readFileSync(config, 'utf8').replace(/^services:\n  - postgres$/m, 'services:\n  - files\n  - postgres\n  - redis'));
  assert.match(readFileSync(config, 'utf8'), /- redis/);
  return dir;
}

async function cli(args: string[], cwd: string): Promise<CliResult> {
  return runCli(args, { cwd, timeoutMs: 20 * 60_000 });
}

async function cliOk(args: string[], cwd: string): Promise<CliResult> {
  const r = await cli(args, cwd);
  assert.equal(r.code, 0, `kraftwerk ${args.join(' ')}:\n${printed(r)}`);
  return r;
}

async function page(address: string, host: string, urlPath = '/'): Promise<string> {
  const a = await get(address, urlPath, 30_000, host);
  assert.equal(a.status, 200, `GET ${urlPath} (Host: ${host}): ${describeAnswer(a)}`);
  return a.body ?? '';
}

/** What of the preview is on the node: one word per part found. */
async function previewParts(): Promise<string[]> {
  const out = await onNode(
    NODE,
    `id -u ${PREVIEW.user} >/dev/null 2>&1 && echo user
[ -d /srv/${PREVIEW.site} ] && echo folder
[ -e /etc/nginx/sites-enabled/kraftwerk-${PREVIEW.site}.conf ] || [ -e /etc/nginx/sites-available/kraftwerk-${PREVIEW.site}.conf ] && echo nginx
for f in /etc/sv/kraftwerk-${PREVIEW.site}@* /etc/service/kraftwerk-${PREVIEW.site}@*; do [ -e "$f" ] && { echo runit; break; }; done
[ -n "$(runuser -u postgres -- psql -XAtc "select 1 from pg_database where datname='${PREVIEW.site}'")" ] && echo database
[ -n "$(runuser -u postgres -- psql -XAtc "select 1 from pg_roles where rolname='${PREVIEW.user}'")" ] && echo role
REDISCLI_AUTH="$(cat /etc/kraftwerk/redis-admin.secret)" redis-cli --no-auth-warning --user kraftwerk ACL LIST | grep -q "^user ${PREVIEW.user} " && echo redis
[ -d /etc/kraftwerk/sites/${PREVIEW.site} ] && echo registration
true`,
  );
  return out.split('\n').filter(Boolean);
}

describe('previews of a site on one node', { skip: sandboxSkip() }, () => {
  it('deploy --preview --with-data, previews, destroy --preview', { timeout: 30 * 60_000 }, async (t) => {
    const dir = project(t);
    await withPreparedSandbox(t, NODE, setupRecipe(), async (sandbox) => {
      const { address } = sandbox;
      // From the snapshot the services are stopped: setup-node starts them (and installs the project's apt packages).
      await cliOk(['setup-node', NODE], dir);
      await cliOk(['deploy', NODE], dir);
      await cliOk(['run', NODE, '--', 'python', 'manage.py', 'shell', '-c', `from notes.models import Note; Note.objects.create(text=${JSON.stringify(NOTE)})`], dir);
      await cliOk(['run', NODE, '--', 'sh', '-c', `printf '%s' '${UPLOAD}' > "$UPLOADS_PATH/hello.txt"`], dir);
      assert.match(await page(address, DOMAIN), new RegExp(`<li>${NOTE}</li>`));

      await t.test('a bad preview name is refused with exit 2, naming --preview, before the node is touched', async () => {
        const r = await cli(['deploy', NODE, '--preview', 'Feat_1'], dir);
        assert.equal(r.code, 2, printed(r));
        assert.match(r.stderr, /--preview "Feat_1": a preview name is one DNS label/);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      });

      await t.test('deploy --preview feat1 --with-data serves the main site\'s data at feat1.<domain>', async () => {
        const r = await cliOk(['deploy', NODE, '--preview', PREVIEW.name, '--with-data'], dir);
        assert.match(r.stdout, new RegExp(`Deployed ${PREVIEW.site} release \\d{8}T\\d{6}Z to ${NODE}: http://${PREVIEW.domain}/`), printed(r));
        assert.match(await page(address, PREVIEW.domain), new RegExp(`<li>${NOTE}</li>`), "the preview shows the main site's note");
        assert.equal(await page(address, PREVIEW.domain, '/uploads/hello.txt'), UPLOAD, "the preview serves the main site's uploads");
        assert.match(await page(address, DOMAIN), new RegExp(`<li>${NOTE}</li>`), 'the main site still answers');
      });

      await t.test('the preview is a site of its own: its user, database, role, Redis user, services', async () => {
        assert.deepEqual(await previewParts(), ['user', 'folder', 'nginx', 'runit', 'database', 'role', 'redis', 'registration']);
        const owner = await onNode(NODE, `runuser -u postgres -- psql -XAtc "select pg_get_userbyid(datdba) from pg_database where datname='${PREVIEW.site}'"`);
        assert.equal(owner.trim(), PREVIEW.user);
        // Its copy is its own: a note added to the preview's database does not reach the main site.
        await onNode(NODE, `runuser -u postgres -- psql -XAt -d ${PREVIEW.site} -c "update notes_note set text = 'changed in the preview'"`);
        assert.match(await page(address, PREVIEW.domain), /<li>changed in the preview<\/li>/);
        assert.match(await page(address, DOMAIN), new RegExp(`<li>${NOTE}</li>`));
        const env = await onNode(NODE, `cat /srv/${PREVIEW.site}/current/.kraftwerk/env`);
        assert.match(env, /KRAFTWERK_PREVIEW='?feat1'?/);
      });

      await t.test('previews lists feat1 with its age and URL', async () => {
        const r = await cliOk(['previews', NODE], dir);
        assert.match(r.stdout, new RegExp(`^  feat1 +\\d+[smhd]  \\d{8}T\\d{6}Z +http://${PREVIEW.domain}/$`, 'm'), printed(r));
        const json = JSON.parse((await cliOk(['previews', NODE, '--json'], dir)).stdout) as { node: string; previews: { name: string; site: string; age: string }[] }[];
        assert.deepEqual(json.map((n) => [n.node, n.previews.map((p) => [p.name, p.site])]), [[NODE, [[PREVIEW.name, PREVIEW.site]]]]);
      });

      await t.test('destroy --preview feat1 --yes removes all of the preview and leaves the main site serving', async () => {
        await cliOk(['destroy', NODE, '--preview', PREVIEW.name, '--yes'], dir);
        assert.deepEqual(await previewParts(), []);
        assert.match(await page(address, DOMAIN), new RegExp(`<li>${NOTE}</li>`));
        assert.match((await cliOk(['previews', NODE], dir)).stdout, /previews of django-site on pv-a:\n {2}none/);
      });
    });
  });
});
