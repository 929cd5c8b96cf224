/**
 * Faults the deploy itself handles (issue 13, items 1, 2, 5, 6) on one
 * sandbox node: Ctrl-C (SIGINT) during a release command and during pip stops
 * the command on the node, undoes the new release, releases the lock and
 * exits 130; a switch whose rename of `current` fails exits 1 and the old
 * release serves; a release command that hangs past `timeouts.release_commands`
 * fails naming the command, the node and the phase, is stopped on the node and
 * the lock is released. After each, the old release serves and the next deploy
 * goes through. Real sandbox, real CLI, HTTP from this machine.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { lockPath } from '../../core/lifecycle/lock.ts';
import { sandboxSkip } from './harness.ts';
import { deployOk, onNode, pageOf, printed, SafeProject, servedPage, SITE, withSetUpNodes } from './safe-helpers.ts';

const NODE = process.env.KRAFTWERK_E2E_LOCK_NODE ?? 'lock-faults';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Set (or with undefined remove) a top-level key of the project's kraftwerk.yaml. */
function setKey(project: SafeProject, key: string, value: unknown): void {
  const file = path.join(project.dir, 'kraftwerk.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  if (value === undefined) doc.delete(key);
  else doc.set(key, value);
  writeFileSync(file, doc.toString());
}

/** PIDs on the node of processes whose command line matches `pattern` (a pgrep -f regex; write one letter as [x] so it does not match this check's own shell). */
async function processesOn(pattern: string): Promise<string[]> {
  return (await onNode(NODE, `pgrep -f '${pattern}' || true`)).split('\n').filter(Boolean);
}

/** Wait (bounded) until a process matching `pattern` runs on the node, while the CLI runs. */
async function waitForProcess(pattern: string, isRunning: () => boolean, timeoutMs = 10 * 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    assert.ok(isRunning(), `the deploy ended before ${pattern} ran on the node`);
    if ((await processesOn(pattern)).length) return;
    await sleep(300);
  }
  assert.fail(`${pattern} did not run on ${NODE} within ${timeoutMs / 1000} s`);
}

/** What is left on the node of processes matching `pattern`, after at most `ms` for them to go (TERM, then KILL 5 s later). */
async function leftAfter(pattern: string, ms = 20_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  let left = await processesOn(pattern);
  while (left.length && Date.now() < deadline) {
    await sleep(500);
    left = await processesOn(pattern);
  }
  return left;
}

async function lockHeld(): Promise<boolean> {
  return (await onNode(NODE, `if [ -e ${lockPath(SITE)} ]; then echo held; fi`)).trim() === 'held';
}

async function releaseFolders(): Promise<string[]> {
  return (await onNode(NODE, `ls -1 /srv/${SITE}/releases`)).split('\n').filter(Boolean);
}

describe('deploy faults: signals, a failing switch, timeouts', { skip: sandboxSkip() }, () => {
  it('each leaves the old release serving, nothing running and no lock; the next deploy passes', { timeout: 60 * 60_000 }, async (t) => {
    const project = SafeProject.create(t).setVersion('A');
    await withSetUpNodes(t, project, [NODE], async ([node]) => {
      const address = node!.address;
      let live = await deployOk(project, NODE);
      let liveVersion = 'A';
      assert.equal(await servedPage(address), pageOf('A'));

      /** After a fault: the live version still serves, the lock is gone; then version `next` deploys. */
      const afterFault = async (st: { test: (name: string, fn: () => Promise<void>) => Promise<void> }, next: string) => {
        await st.test('the old release serves', async () => assert.equal(await servedPage(address), pageOf(liveVersion)));
        await st.test('the lock is released', async () => assert.equal(await lockHeld(), false, `${lockPath(SITE)} is still there`));
        await st.test('the next deploy passes', async () => {
          live = await deployOk(project.setVersion(next), NODE);
          liveVersion = next;
          assert.equal(await servedPage(address), pageOf(next));
        });
      };

      await t.test('SIGINT during a release command', async (st) => {
        project.setVersion('B').setReleaseCommands(['sleep 613']);
        const before = await releaseFolders();
        const cli = project.spawn(['deploy', NODE]);
        await waitForProcess('[s]leep 613', cli.running);
        process.kill(cli.pid, 'SIGINT');
        const r = await cli.done;
        await st.test('exit 130 with one line saying what was left as it was', async () => {
          assert.equal(r.code, 130, printed(r));
          assert.match(r.stderr, new RegExp(`interrupted \\(SIGINT\\): release \\d{8}T\\d{6}Z removed, live release ${live} untouched, lock released`), printed(r));
        });
        await st.test('nothing of the release command keeps running on the node', async () => {
          assert.deepEqual(await leftAfter('[s]leep 613'), []);
        });
        await st.test('the new release folder is gone', async () => assert.deepEqual(await releaseFolders(), before));
        project.setReleaseCommands([]);
        await afterFault(st, 'C');
      });

      await t.test('SIGINT during pip', async (st) => {
        // A package index on the node that accepts connections and never answers: pip waits (and retries) for minutes.
        await onNode(
          NODE,
          `setsid python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 8613)); s.listen(64); time.sleep(3600)' </dev/null >/dev/null 2>&1 &`,
        );
        project.setVersion('D');
        writeFileSync(path.join(project.dir, 'requirements.txt'), '--index-url http://127.0.0.1:8613/simple/\nkraftwerk-lock-faults-slow==1.0\n');
        const cli = project.spawn(['deploy', NODE]);
        // The pip process itself (its parents' command lines name it too, but start otherwise).
        await waitForProcess('^/srv/[^ ]*/bin/python -m [p]ip install', cli.running);
        process.kill(cli.pid, 'SIGINT');
        const r = await cli.done;
        await onNode(NODE, "pkill -f '[8]613' || true");
        await st.test('exit 130, the new release removed, the live one untouched', async () => {
          assert.equal(r.code, 130, printed(r));
          assert.match(r.stderr, new RegExp(`interrupted \\(SIGINT\\): release \\d{8}T\\d{6}Z removed, live release ${live} untouched, lock released`), printed(r));
        });
        await st.test('pip does not keep running on the node', async () => assert.deepEqual(await leftAfter('[p]ip install'), []));
        await afterFault(st, 'E');
      });

      await t.test('a switch whose rename of current fails', async (st) => {
        // Something in the way where the switch makes its new link: a non-empty folder.
        await onNode(NODE, `mkdir -p /srv/${SITE}/current.new/in-the-way`);
        project.setVersion('F');
        const r = await project.cli(['deploy', NODE]);
        await onNode(NODE, `rm -rf /srv/${SITE}/current.new`);
        await st.test('exit 1, naming the node and the switch', async () => {
          assert.equal(r.code, 1, printed(r));
          assert.match(r.stderr, new RegExp(`switch on ${NODE} \\(restart\\) failed`), printed(r));
          assert.match(r.stderr, /could not point .*current at releases\//, printed(r));
          assert.doesNotMatch(r.stdout, /^Deployed /m, printed(r));
        });
        await afterFault(st, 'G');
      });

      await t.test('a release command that hangs past timeouts.release_commands', async (st) => {
        project.setVersion('H').setReleaseCommands(['sleep 614']);
        setKey(project, 'timeouts', { release_commands: '8s' });
        const r = await project.cli(['deploy', NODE]);
        setKey(project, 'timeouts', undefined);
        project.setReleaseCommands([]);
        await st.test('exit 1, naming the command, the node and the phase', async () => {
          assert.equal(r.code, 1, printed(r));
          assert.match(r.stderr, new RegExp(`release command \`sleep 614\` on ${NODE} \\(configure\\) timed out: it ran longer than 8 s`), printed(r));
        });
        await st.test('the command was stopped on the node', async () => assert.deepEqual(await leftAfter('[s]leep 614'), []));
        await afterFault(st, 'I');
      });
    });
  });
});
