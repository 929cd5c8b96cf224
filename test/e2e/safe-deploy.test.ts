/**
 * Safe deploys on one sandbox node (issue 5, "Done when"): rollback restores
 * the previous release's content; a broken release (import error) never
 * serves a request and the deploy exits 1 with its log tail; a second
 * concurrent deploy is refused naming the holder. Real sandbox, real CLI,
 * HTTP from this machine with the site's Host header.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { lockPath } from '../../core/lifecycle/lock.ts';
import { sandboxSkip } from './harness.ts';
import {
  assertOnlyServed,
  deployOk,
  liveRelease,
  MISSING_NAME,
  pageOf,
  poll,
  printed,
  releasesOn,
  SafeProject,
  servedPage,
  SITE,
  waitForLock,
  withSetUpNodes,
} from './safe-helpers.ts';

// KRAFTWERK_E2E_SAFE_NODE: another name, so that two checkouts can run this suite at once.
const NODE = process.env.KRAFTWERK_E2E_SAFE_NODE ?? 'safe-one';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('safe deploys on one node', { skip: sandboxSkip() }, () => {
  it('rollback, a broken release and a concurrent deploy', { timeout: 60 * 60_000 }, async (t) => {
    const project = SafeProject.create(t).setVersion('A');
    await withSetUpNodes(t, project, [NODE], async ([node]) => {
      const address = node!.address;
      const statusOf = (rows: { id: string; status: string }[], id: string) => rows.find((r) => r.id === id)?.status;

      await t.test('rollback restores the previous release with its own config', async () => {
        const a = await deployOk(project.setVersion('A'), NODE);
        assert.equal(await servedPage(address), pageOf('A'));
        const b = await deployOk(project.setVersion('B'), NODE);
        assert.equal(await servedPage(address), pageOf('B'));

        const before = await releasesOn(project, NODE);
        assert.equal(statusOf(before, b), 'live', `kraftwerk releases: ${JSON.stringify(before)}`);
        assert.equal(statusOf(before, a), 'previous', `kraftwerk releases: ${JSON.stringify(before)}`);

        const poller = poll(address);
        const back = await project.cli(['rollback', NODE]);
        const during = await poller.stop();
        assert.equal(back.code, 0, `kraftwerk rollback ${NODE}:\n${printed(back)}`);
        assert.equal(await servedPage(address), pageOf('A'), 'after the rollback, A is served with its own environment');
        assertOnlyServed(during, [pageOf('A'), pageOf('B')], 'during kraftwerk rollback');
        const after = await releasesOn(project, NODE);
        assert.equal(liveRelease(after), a, `kraftwerk releases after the rollback: ${JSON.stringify(after)}`);

        const forward = await project.cli(['rollback', NODE, '--to', b]);
        assert.equal(forward.code, 0, `kraftwerk rollback ${NODE} --to ${b}:\n${printed(forward)}`);
        assert.equal(await servedPage(address), pageOf('B'), 'rollback --to switches to the named release');
        assert.equal(liveRelease(await releasesOn(project, NODE)), b);
      });

      await t.test('a broken release (import error) never serves a request', async (st) => {
        const good = await deployOk(project.setVersion('A'), NODE);
        project.setBrokenVersion('X');
        const poller = poll(address);
        const r = await project.cli(['deploy', NODE]);
        // Keep asking a while after the failed deploy: nothing may change later either.
        await sleep(5000);
        const answers = await poller.stop();

        // One deploy, each promise checked on its own so that a failure names exactly which one.
        await st.test('the deploy exits 1', () => {
          assert.equal(r.code, 1, printed(r));
        });
        await st.test("its output has the tail of the new release's log (the ImportError)", () => {
          assert.match(`${r.stdout}\n${r.stderr}`, new RegExp(`ImportError: cannot import name '${MISSING_NAME}'`), printed(r));
        });
        await st.test('the old release answered every request during and after the deploy', () => {
          assertOnlyServed(answers, [pageOf('A')], 'during and after the broken deploy', 20);
        });
        await st.test('the old release is still the live one', async () => {
          assert.equal(await servedPage(address), pageOf('A'));
          const rows = await releasesOn(project, NODE);
          assert.equal(liveRelease(rows), good, `kraftwerk releases: ${JSON.stringify(rows)}`);
        });
      });

      await t.test('a second concurrent deploy is refused and names the holder', async () => {
        // The first deploy holds the lock for a while: its release command sleeps.
        const slow = SafeProject.create(t).setVersion('L').setReleaseCommands(['sleep 20']);
        const first = slow.spawn(['deploy', NODE]);
        try {
          await waitForLock(NODE, lockPath(SITE), first.running);
          const second = await project.setVersion('M').cli(['deploy', NODE]);
          assert.equal(second.code, 1, `the second deploy:\n${printed(second)}`);
          const holder = `${os.userInfo().username}@${os.hostname()}`;
          assert.ok(second.stderr.includes(holder), `the refusal names the holder ${holder}:\n${printed(second)}`);
          assert.ok(first.running(), 'the first deploy still ran when the second was refused (the test proves nothing otherwise)');
          const done = await first.done;
          assert.equal(done.code, 0, `the first deploy:\n${printed(done)}`);
          assert.equal(await servedPage(address), pageOf('L'));
        } finally {
          first.killHard();
        }
      });
    });
  });
});
