/**
 * A node group (issue 5, "Done when"): `nodes: { both: [safe-a, safe-b] }`
 * deploys to both; a version that cannot start on one node is switched on
 * none; a version that fails its health check after the switch on one node
 * only is rolled back on both; `kraftwerk rollback both` switches both back.
 * The fixture app reads flag files on the node (see its app.py) to fail on
 * one node only.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quote } from '../../core/shell/sh.ts';
import { sandboxSkip } from './harness.ts';
import {
  assertOnlyServed,
  deployOk,
  liveRelease,
  onNode,
  pageOf,
  poll,
  printed,
  releasesOn,
  SafeProject,
  servedPage,
  UNHEALTHY_FLAG,
  UNLOADABLE_FLAG,
  withSetUpNodes,
} from './safe-helpers.ts';

const A = 'safe-a';
const B = 'safe-b';
const GROUP = 'both';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a two-node group', { skip: sandboxSkip() }, () => {
  it('deploys and rolls back together', { timeout: 60 * 60_000 }, async (t) => {
    const project = SafeProject.create(t).setVersion('A').setNodes({ [GROUP]: [A, B] });
    await withSetUpNodes(t, project, [A, B], async (sandboxes) => {
      const address = { [A]: sandboxes[0]!.address, [B]: sandboxes[1]!.address };
      const both = [A, B] as const;
      let good: string | undefined;

      const assertBothLive = async (version: string, id: string | undefined, what: string) => {
        for (const n of both) {
          const rows = await releasesOn(project, n);
          const releases = `kraftwerk releases ${n}: ${JSON.stringify(rows.map((r) => `${r.id} ${r.status}`))}`;
          assert.equal(await servedPage(address[n]!), pageOf(version), `${what}: ${n} serves ${version}; ${releases}`);
          assert.equal(liveRelease(rows), id, `${what}: live release on ${n}; ${releases}`);
        }
      };

      /** Deploy the project to the group while both nodes are polled; the answers per node. */
      const deployPolled = async () => {
        const pollers = both.map((n) => poll(address[n]!));
        const r = await project.cli(['deploy', GROUP]);
        await sleep(3000);
        const [onA, onB] = await Promise.all(pollers.map((p) => p.stop()));
        return { r, answers: { [A]: onA!, [B]: onB! } };
      };

      await t.test('deploy to the group makes the same release live on both nodes', async () => {
        good = await deployOk(project.setVersion('A'), GROUP);
        await assertBothLive('A', good, 'after deploying A');
      });

      await t.test('a version that cannot start on one node is switched on neither', async () => {
        assert.ok(good, 'A was deployed to both');
        await onNode(B, `echo U > ${quote(UNLOADABLE_FLAG)} && chmod 644 ${quote(UNLOADABLE_FLAG)}`);
        project.setVersion('U');
        const { r, answers } = await deployPolled();
        assert.equal(r.code, 1, printed(r));
        assert.match(`${r.stdout}\n${r.stderr}`, new RegExp(`${B}[^]*flagged unloadable|flagged unloadable[^]*${B}`), `the failure names ${B} and shows its log:\n${printed(r)}`);
        for (const n of both) assertOnlyServed(answers[n]!, [pageOf('A')], `${n} during the deploy of U`);
        await assertBothLive('A', good, 'after the failed deploy of U');
      });

      await t.test('a version that fails its health check after the switch on one node is rolled back on both', async () => {
        assert.ok(good, 'A was deployed to both');
        await onNode(B, `echo H > ${quote(UNHEALTHY_FLAG)} && chmod 644 ${quote(UNHEALTHY_FLAG)}`);
        project.setVersion('H');
        const { r, answers } = await deployPolled();
        assert.equal(r.code, 1, printed(r));
        assert.match(`${r.stdout}\n${r.stderr}`, new RegExp(`${B}[^]*health|health[^]*${B}`, 'i'), `the failure names ${B} and its health check:\n${printed(r)}`);
        // H may serve for a moment between the switch and the roll back, but nothing may fail.
        for (const n of both) assertOnlyServed(answers[n]!, [pageOf('A'), pageOf('H')], `${n} during the deploy of H`);
        await assertBothLive('A', good, 'after the deploy of H was rolled back');
      });

      await t.test('kraftwerk rollback on the group switches both nodes back', async () => {
        assert.ok(good, 'A was deployed to both');
        const b = await deployOk(project.setVersion('B'), GROUP);
        await assertBothLive('B', b, 'after deploying B');
        const back = await project.cli(['rollback', GROUP]);
        assert.equal(back.code, 0, printed(back));
        await assertBothLive('A', good, 'after kraftwerk rollback both');
      });
    });
  });
});
