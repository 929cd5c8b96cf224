/**
 * Interrupted deploys (issue 5, "Done when"): the CLI is killed with SIGKILL
 * (with everything it started: rsync, ssh) during sync, during install,
 * during configure and right around the switch. Each time the old release
 * keeps serving with its old config, also after its services restart, and the
 * next deploy passes without manual cleanup (it takes over the stale lock).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STALE_SECONDS } from '../../core/lifecycle/lock.ts';
import { sandboxSkip, type CliResult } from './harness.ts';
import {
  assertOnlyServed,
  deployOk,
  liveRelease,
  pageOf,
  poll,
  printed,
  releaseIdIn,
  releasesOn,
  restartSite,
  SafeProject,
  servedPage,
  waitForPage,
  withSetUpNodes,
} from './safe-helpers.ts';

// KRAFTWERK_E2E_KILL_NODE: another name, so that two checkouts can run this suite at once.
const NODE = process.env.KRAFTWERK_E2E_KILL_NODE ?? 'safe-kill';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface KillPoint {
  phase: string;
  /** Kill when the deploy's (non-TTY) output first matches this. */
  at: RegExp;
  /** Megabytes of incompressible data added to the project, so that the kill lands in the transfer. */
  blobMb?: number;
  /**
   * Killed right around the switch, the new release may already be live: then
   * it must be the whole new release (code and config, recorded as live), never a mix.
   */
  mayBeSwitched?: boolean;
}

const POINTS: KillPoint[] = [
  { phase: 'during sync', at: /^❯ rsync project/m, blobMb: 48 },
  // Each version has its own requirements, so this is a venv being built.
  { phase: 'during install', at: /^❯ python: virtualenv/m },
  // The new config files are written, nothing is switched yet.
  { phase: 'during configure', at: /^✔ write configuration/m },
  { phase: 'right around the switch', at: /^❯ .*\bswitch\b/im, mayBeSwitched: true },
];

describe('killed deploys', { skip: sandboxSkip() }, () => {
  it('a deploy killed at four points leaves the old release serving and the next deploy passes', { timeout: 60 * 60_000 }, async (t) => {
    const project = SafeProject.create(t).setVersion('A');
    await withSetUpNodes(t, project, [NODE], async ([node]) => {
      const address = node!.address;
      // What is live: known after each passing step, unknown after a failed one (the next step redeploys).
      let live: { version: string; id: string } | undefined = { version: 'A', id: await deployOk(project, NODE) };
      assert.equal(await servedPage(address), pageOf('A'));
      const versions = ['B', 'C', 'D', 'E'];

      for (const [i, point] of POINTS.entries()) {
        const version = versions[i]!;
        await t.test(`killed ${point.phase}`, async (st) => {
          if (!live) {
            const v = `R${i}`;
            live = { version: v, id: await deployOk(project.setVersion(v), NODE, ['--lock-wait', `${STALE_SECONDS * 3}s`]) };
          }
          const old = live;
          live = undefined;
          project.setVersion(version);
          if (point.blobMb) project.addBlob(point.blobMb);

          const poller = poll(address);
          const cli = project.spawn(['deploy', NODE]);
          try {
            await cli.waitFor(point.at, 10 * 60_000);
          } finally {
            cli.killHard();
          }
          const killed = await cli.done;
          await sleep(3000);
          const answers = await poller.stop();
          st.diagnostic(`killed at: ${cli.output().trimEnd().split('\n').at(-1)}`);
          const newId = releaseIdIn(cli.output());

          const allowed = point.mayBeSwitched ? [pageOf(old.version), pageOf(version)] : [pageOf(old.version)];
          // Each promise checked on its own (in order, all of them), so that a failure names exactly which one.
          let served = '';
          await st.test(`the ${point.mayBeSwitched ? 'old or the whole new' : 'old'} release served every request`, async () => {
            assertOnlyServed(answers, allowed, `while the deploy was killed ${point.phase} (exit ${killed.code})`);
            served = await servedPage(address);
            assert.ok(allowed.includes(served), `after the kill, GET / answered ${JSON.stringify(served)}`);
          });
          await st.test('kraftwerk releases shows the served release as live', async () => {
            const switched = served === pageOf(version);
            const rows = await releasesOn(project, NODE);
            assert.equal(
              liveRelease(rows),
              switched ? newId : old.id,
              `the live release is the one served (${switched ? 'new' : 'old'}); kraftwerk releases: ${JSON.stringify(rows)}`,
            );
          });
          // Code, configuration (uWSGI ini, environment) and traffic switch together with `current`.
          await st.test('the files on the node say the same: a restart of the site serves the same release and config', async () => {
            // As after a reboot or a crash of uWSGI: what then serves is what the files on the node say.
            await restartSite(NODE);
            assert.equal(await waitForPage(address), served || pageOf(old.version));
          });
          let next: CliResult | undefined;
          await st.test('the next deploy passes without manual cleanup, taking over the stale lock', async () => {
            next = await project.cli(['deploy', NODE, '--lock-wait', `${STALE_SECONDS * 3}s`]);
            assert.equal(next.code, 0, `the next deploy:\n${printed(next)}`);
            assert.match(next.stderr, /stale/i, `the next deploy says it took over a stale lock:\n${printed(next)}`);
            assert.equal(await servedPage(address), pageOf(version));
          });
          if (next?.code !== 0) return;
          live = { version, id: releaseIdIn(next.stdout)! };
        });
      }
    });
  });
});
