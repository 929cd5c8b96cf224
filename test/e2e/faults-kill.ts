/**
 * Fault injection, kill -9 (issue 13): the CLI (with everything it started:
 * rsync, ssh) killed at every step boundary of the deploy phases a suite
 * names. The steps are not listed here: a reference deploy's own progress
 * lines (the plain renderer prints `❯ <title>` as each task starts) name
 * them, so a step a plugin adds is a kill point too. After each kill every
 * service on the node is restarted (as a reboot would): the old release,
 * code and configuration, must serve (from the switch on, the whole new one
 * may), and the next deploy goes through. Each kill is its own counted case.
 * Two suites share this (faults-kill.test.ts, faults-kill-configure.test.ts)
 * so that each stays well inside the runner's 20 minutes per file.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deployPhases, type DeployPhase } from '../../core/engine/hooks.ts';
import { sandboxSkip } from './harness.ts';
import {
  assertOnlyServed,
  assertWholeVersionLive,
  deployOk,
  FaultCounter,
  faultsBudgetMs,
  FAULTS_FIXTURE,
  liveRelease,
  pageOf,
  poll,
  printed,
  releaseIdIn,
  releasesOn,
  restartNode,
  SafeProject,
  servedPage,
  setFaultVersion,
  waitForPage,
  withSetUpNodes,
} from './safe-helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Boundary {
  phase: string;
  /** The task's title as it starts (before it sets its final title). */
  title: string;
  /** Which start of that title (a title can repeat, e.g. in two plugins' lists). */
  occurrence: number;
}

/** Every task start of a deploy's plain output, in order, with the phase it belongs to. */
export function boundariesOf(output: string): Boundary[] {
  const phases: readonly string[] = deployPhases;
  const seen = new Map<string, number>();
  const found: Boundary[] = [];
  let phase = '';
  const lines = output.split('\n');
  for (const [i, line] of lines.entries()) {
    const m = /^❯ (.+?)\s*$/.exec(line);
    if (!m) continue;
    const title = m[1]!;
    const occurrence = (seen.get(title) ?? 0) + 1;
    seen.set(title, occurrence);
    if (phases.includes(title)) phase = title;
    // A phase's own line starts nothing remote: its first task's start is the same boundary.
    // A skipped task ("↓ title [SKIPPED…]" right after its start) runs nothing either.
    else if (!lines[i + 1]?.startsWith(`↓ ${title}`)) found.push({ phase, title, occurrence });
  }
  return found;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Matches once the output has the `occurrence`-th start line of `title`. */
function startOf(b: Boundary): RegExp {
  const line = `^❯ ${escape(b.title)}\\s*$`;
  return new RegExp(`${`(?:${line}[\\s\\S]*?)`.repeat(b.occurrence - 1)}${line}`, 'm');
}

/** The suite: kill -9 at each step boundary of `phases`, on sandbox `node`. */
export function killAtEveryBoundary(node: string, phases: readonly DeployPhase[]): void {
  const NODE = node;
  const name = `kill -9 at every step boundary of ${phases.join(', ')}`;
  describe(name, { skip: sandboxSkip() }, () => {
    it('each kill leaves the old release serving, after a restart of every service too, and the next deploy passes', { timeout: 19 * 60_000 }, async (t) => {
      const project = SafeProject.create(t, FAULTS_FIXTURE);
      const counter = new FaultCounter(faultsBudgetMs()); // the it's 19 minutes, less one slow case and the teardown
      // Reported also when a step outside the counted cases fails (or the budget ran out).
      try {
        await withSetUpNodes(t, project, [NODE], async ([node]) => {
          const address = node!.address;
          await deployOk(setFaultVersion(project, 'A'), NODE);
          // The reference: an ordinary deploy (not the first: that one provisions), whose task starts are the kill points.
          setFaultVersion(project, 'B');
          const b = await project.cli(['deploy', NODE]);
          assert.equal(b.code, 0, `deploy of B:\n${printed(b)}`);
          let live: { version: string; id: string } | undefined = { version: 'B', id: releaseIdIn(b.stdout)! };
          const all = boundariesOf(`${b.stdout}\n${b.stderr}`);
          t.diagnostic(`${all.length} step boundaries: ${all.map((p) => `${p.phase}/${p.title}`).join(', ')}`);
          for (const phase of deployPhases) assert.ok(all.some((p) => p.phase === phase), `the deploy output shows tasks of phase ${phase}:\n${printed(b)}`);
          const switchAt = all.findIndex((p) => /\bswitch\b/i.test(p.title));
          assert.ok(switchAt > 0, `the deploy output shows the switch task:\n${printed(b)}`);

          for (const [i, point] of all.entries()) {
            if (!phases.includes(point.phase as DeployPhase)) continue;
            const version = `K${i}`;
            const mayBeSwitched = i >= switchAt;
            await counter.fault(
              t,
              `kill -9 at the start of ${point.phase}: ${point.title}${point.occurrence > 1 ? ` (#${point.occurrence})` : ''}`,
              `${mayBeSwitched ? 'old or whole new' : 'old'} release served during the kill and after restarting every service (page, env, worker, cron, nginx alias); next deploy passes`,
              async () => {
                if (!live) {
                  const v = `R${i}`;
                  live = { version: v, id: await deployOk(setFaultVersion(project, v), NODE, ['--lock-wait', '90s']) };
                }
                const old: { version: string; id: string } = live;
                live = undefined;
                // A venv of its own only where the kill lands in the install phase (building one costs seconds).
                setFaultVersion(project, version, { ownVenv: point.phase === 'install' });

                const poller = poll(address);
                const cli = project.spawn(['deploy', NODE]);
                try {
                  await cli.waitFor(startOf(point), 5 * 60_000);
                } finally {
                  cli.killHard();
                }
                const killed = await cli.done;
                await sleep(1000);
                const answers = await poller.stop();
                const newId = releaseIdIn(cli.output());
                const allowed = mayBeSwitched ? [pageOf(old.version), pageOf(version)] : [pageOf(old.version)];
                assertOnlyServed(answers, allowed, `while the deploy was killed at ${point.title} (exit ${killed.code})`, 3);

                await restartNode(NODE);
                const served = await waitForPage(address);
                assert.ok(allowed.includes(served), `after the kill and a restart of every service, GET / answered ${JSON.stringify(served)}`);
                const switched = served === pageOf(version);
                await assertWholeVersionLive(address, NODE, switched ? version : old.version, [switched ? old.version : version]);
                const rows = await releasesOn(project, NODE);
                assert.equal(liveRelease(rows), switched ? newId : old.id, `kraftwerk releases shows the served release as live: ${JSON.stringify(rows)}`);

                const next = await project.cli(['deploy', NODE, '--lock-wait', '90s']);
                assert.equal(next.code, 0, `the next deploy:\n${printed(next)}`);
                assert.equal(await servedPage(address), pageOf(version), 'the next deploy went live');
                live = { version, id: releaseIdIn(next.stdout)! };
              },
            );
          }
        });
      } finally {
        counter.report(t, name);
      }
    });
  });
}
