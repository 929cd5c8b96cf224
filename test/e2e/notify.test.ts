/**
 * Issue 17, notifications, on a real sandbox: a project with `notify:` pointing at a receiver on
 * 127.0.0.1 of this machine (the deploying one: webhooks are sent from here, never from the node).
 * A deploy that goes live POSTs `deployed` with its release, a broken release POSTs `failed` with
 * the deploy's own exit 1, a rollback POSTs `rolled_back`, and a dead webhook beside the live one
 * only warns. Real CLI, set-up snapshot.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { sandboxSkip, withPreparedSandbox } from './harness.ts';
import { deployOk, printed, SafeProject, setupRecipe, SITE } from './safe-helpers.ts';
import { deadWebhookUrl, webhookReceiver } from '../helpers/webhook-receiver.ts';

const NODE = 'notify-a';

describe('notify: webhooks hear how deploys end', { skip: sandboxSkip() }, () => {
  it('deployed, failed, rolled_back, and a dead webhook that only warns', { timeout: 40 * 60_000 }, async (t: TestContext) => {
    const hook = await webhookReceiver();
    t.after(() => hook.close());
    const dead = await deadWebhookUrl();
    const project = SafeProject.create(t).setVersion('A', { ownVenv: false });
    project.editConfig((doc) => doc.set('notify', [{ webhook: dead }, { webhook: hook.url }]));
    const sent = () => hook.json() as Record<string, unknown>[];

    await withPreparedSandbox(t, NODE, setupRecipe(), async () => {
      const a = await deployOk(project, NODE);
      await t.test('a deploy that went live POSTs deployed with its release; the dead webhook only warns', async () => {
        const [p] = sent();
        assert.ok(p, 'the receiver got the deploy');
        assert.equal(p.status, 'deployed');
        assert.equal(p.site, SITE);
        assert.deepEqual(p.nodes, [NODE]);
        assert.equal(p.release, a);
        assert.match(String(p.text), new RegExp(`^${SITE}: deployed release ${a} to ${NODE} in `));
      });

      await t.test('a broken release: the deploy exits 1 as before, the webhook hears failed', async () => {
        const before = sent().length;
        const r = await project.setBrokenVersion('X').cli(['deploy', NODE]);
        assert.equal(r.code, 1, printed(r));
        assert.match(r.stderr, /notify: webhook http:\/\/127\.0\.0\.1:\d+\/… not told of "failed": ECONNREFUSED/, printed(r));
        const p = sent()[before];
        assert.ok(p, 'the receiver got the failure');
        assert.equal(p.status, 'failed');
        assert.match(String(p.error), /./);
      });

      await t.test('a rollback POSTs rolled_back', async () => {
        const b = await deployOk(project.setVersion('B', { ownVenv: false }), NODE);
        const before = sent().length;
        const r = await project.cli(['rollback', NODE]);
        assert.equal(r.code, 0, printed(r));
        const p = sent()[before];
        assert.ok(p, 'the receiver got the rollback');
        assert.equal(p.status, 'rolled_back');
        assert.equal(p.release, a);
        assert.equal(p.previous_release, b);
      });
    });
  });
});
