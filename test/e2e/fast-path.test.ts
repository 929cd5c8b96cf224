/**
 * Issue 15, the no-change fast path, on one real sandbox (set-up snapshot): a deploy of what
 * is already live says `already live: <id> (no change)`, exits 0 and changes nothing on the
 * node (the releases, the live slot and its app process, the site's configuration files); one
 * changed file, `--force`, and an `env set` each make the next deploy a real one.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { sandboxSkip, withPreparedSandbox } from './harness.ts';
import { deployOk, onNode, pageOf, printed, SafeProject, servedPage, setupRecipe, SITE } from './safe-helpers.ts';

const NODE = 'fast-a';

/**
 * What a no-change deploy must leave as it was, in one line per thing: the release folders and
 * records (with their times), where `current` points, which slot runs with which app pid, and the
 * modification times of the site's configuration files on the node.
 */
const NODE_STATE = `cd /srv/${SITE} || exit 1
echo "current $(readlink current)"
ls -1 releases
find .kraftwerk -maxdepth 2 -printf '%p %T@\\n' 2>/dev/null | sort
for s in /etc/service/kraftwerk-${SITE}@*; do [ -e "$s" ] && echo "$s $(sv status "$s" | grep -o 'pid [0-9]*')"; done
find /etc/nginx/sites-available /etc/nginx/sites-enabled /etc/sv -path '*${SITE}*' -printf '%p %T@\\n' 2>/dev/null | sort
find "$(readlink -f current)/.kraftwerk" -printf '%p %T@\\n' 2>/dev/null | sort`;

describe('deploy: the no-change fast path', { skip: sandboxSkip() }, () => {
  it('no change, one changed file, --force, env set', { timeout: 40 * 60_000 }, async (t: TestContext) => {
    const project = SafeProject.create(t).setVersion('A', { ownVenv: false });
    await withPreparedSandbox(t, NODE, setupRecipe(), async (sandbox) => {
      const a = await deployOk(project, NODE);
      const state = () => onNode(NODE, NODE_STATE);

      await t.test('a deploy with no change: already live, exit 0, nothing changed on the node', async () => {
        const before = await state();
        const r = await project.cli(['deploy', NODE, '--timings']);
        assert.equal(r.code, 0, printed(r));
        assert.match(r.stdout, new RegExp(`^already live: ${a} \\(no change\\)$`, 'm'), printed(r));
        assert.doesNotMatch(r.stdout, /^Deployed /m, printed(r));
        // --timings: one line per task, `timings: <phase> <task> <ms> ms` (the bench reads them).
        assert.match(r.stdout, /^timings: preSync inspect node \d+ ms$/m, printed(r));
        assert.match(r.stdout, /^timings: deploy total \d+ ms$/m, printed(r));
        assert.equal(await state(), before, 'the node is as it was');
        assert.equal(await servedPage(sandbox.address), pageOf('A'));
      });

      let b = '';
      await t.test('one changed file: a new release', async () => {
        writeFileSync(path.join(project.dir, 'note.txt'), 'one more file\n');
        b = await deployOk(project, NODE);
        assert.notEqual(b, a);
        assert.equal(await servedPage(sandbox.address), pageOf('A'));
      });

      await t.test('--force with no change: a new release', async () => {
        const c = await deployOk(project, NODE, ['--force']);
        assert.notEqual(c, b);
      });

      await t.test('env set: the next deploy is not a no-op', async () => {
        const set = await project.cli(['env', 'set', NODE, 'FAST_PATH_NOTE=changed']);
        assert.equal(set.code, 0, printed(set));
        const r = await project.cli(['deploy', NODE]);
        assert.equal(r.code, 0, printed(r));
        assert.doesNotMatch(r.stdout, /already live/, printed(r));
        assert.match(r.stdout, /^Deployed /m, printed(r));
      });
    });
  });
});
