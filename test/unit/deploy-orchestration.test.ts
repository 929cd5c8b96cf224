// The deploy's orchestration, without a server (issue 14): the real `deployCommand` runs for a
// temp project with every connection replaced by a recording Remote that answers like a node
// would (test/helpers/recording-remote.ts).
//   (i)   a group deploy whose second node fails its health check rolls the first back too;
//   (ii)  a deploy that fails before the switch undoes its release (the folder goes) and never switches;
//   (iii) a single-node deploy releases its lock with its last command (no unlock round trip);
//   (iv)  --dry-run changes nothing (no connection, no rsync) and prints the commands;
//   (v)   the code goes to the node through the Remote too (one executor: rsync is a Remote operation).
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { deployCommand } from '../../core/cli/actions/deploy.ts';
import {
  fakeNodes as nodes,
  installRsyncShim,
  LIVE,
  LOCK_DIR,
  orchestrationProject as project,
  quiet,
  RecordingKit,
  SITE,
} from '../helpers/recording-remote.ts';

const execs = (kit: RecordingKit, node?: string) => kit.effects.filter((e) => e.op === 'exec' && (!node || e.node === node) && !/&& touch \S+\/info$/.test(e.text));
const isUnlock = (text: string) => text.includes(`then rm -rf ${LOCK_DIR}; fi`);

// No rsync is ever spawned beside the Remote (case v checks the shim's log).
let shim: ReturnType<typeof installRsyncShim>;
let rsyncLog: string;
before(() => {
  shim = installRsyncShim();
  rsyncLog = shim.log;
});
after(() => shim.restore());

describe('deploy orchestration through a recording Remote', () => {
  it('(i) a group deploy whose second node fails its health check rolls back the first node too', async () => {
    const fake = nodes('web1', 'web2');
    fake.get('web2')!.newReleaseBroken = true;
    const kit = new RecordingKit(quiet, project(), fake);
    await assert.rejects(deployCommand(kit, 'web', {}), (err: Error & { hint?: string }) => {
      assert.match(err.message, /failed on web2\b/);
      assert.match(err.message, /health check failed/);
      assert.match(err.hint ?? '', /Rolled back: .*web1 → 20200101T000000Z/);
      return true;
    });
    const web1 = fake.get('web1')!;
    const web2 = fake.get('web2')!;
    // web1 went live with the new release (its own health check passed), then back.
    assert.equal(web1.switches.length, 2, `web1 switches: ${web1.switches.join(', ')}`);
    assert.notEqual(web1.switches[0], LIVE);
    assert.equal(web1.switches[1], LIVE);
    assert.equal(web1.current, LIVE, 'web1 serves the previous release again');
    assert.equal(web2.current, LIVE, 'web2 serves the previous release again');
    // The failed release is no good one on either node: its record goes, so rollback never picks it.
    const failed = web1.switches[0]!;
    for (const n of ['web1', 'web2']) {
      assert.ok(execs(kit, n).some((e) => e.text.includes(`rm -f /srv/${SITE}/.kraftwerk/releases/${failed}.json`)), `${n}: the failed release's record is removed`);
      assert.equal(fake.get(n)!.lockToken, undefined, `${n}: the lock is released`);
    }
  });

  it('(ii) a deploy that fails before the switch undoes its release (the folder goes) and never switches', async () => {
    const fake = nodes('web1');
    const node = fake.get('web1')!;
    node.failOn = './migrate --check';
    const kit = new RecordingKit(quiet, project('release:\n  - ./migrate --check\n'), fake);
    await assert.rejects(deployCommand(kit, 'web1', {}), /migrate --check/);
    assert.deepEqual(node.switches, [], 'nothing was switched');
    assert.equal(node.current, LIVE);
    assert.ok(!execs(kit).some((e) => e.text.includes('kraftwerk: switched')), 'no switch script ran');
    const undo = execs(kit).filter((e) => e.text.includes('nothing undone'));
    assert.equal(undo.length, 1, 'the undo ran once');
    assert.equal(node.removed.length, 1, 'the undo removed the new release folder');
    assert.notEqual(node.removed[0], LIVE);
    assert.equal(node.lockToken, undefined, 'the lock is released');
  });

  it('(iii) a single-node deploy releases its lock with its last command, the release record (no unlock round trip)', async () => {
    const fake = nodes('web1');
    const kit = new RecordingKit(quiet, project(), fake);
    await deployCommand(kit, 'web1', {});
    const node = fake.get('web1')!;
    assert.equal(node.switches.length, 1);
    assert.equal(node.lockToken, undefined, 'the lock is released');
    const all = execs(kit);
    const unlocks = all.filter((e) => isUnlock(e.text));
    assert.equal(unlocks.length, 1, 'one command releases the lock');
    assert.equal(unlocks[0], all.at(-1), 'it is the last command of the deploy');
    assert.match(unlocks[0]!.text, /could not write the release record/, 'it is the release record, with the unlock appended');
  });

  it('(v) the project reaches the node through the Remote (rsync is a Remote operation, none is spawned beside it)', async () => {
    const fake = nodes('web1');
    const kit = new RecordingKit(quiet, project(), fake);
    if (existsSync(rsyncLog)) rmSync(rsyncLog);
    await deployCommand(kit, 'web1', {});
    const rsyncs = kit.effects.filter((e) => e.op === 'rsync');
    assert.ok(!existsSync(rsyncLog), `an rsync was spawned beside the Remote: ${existsSync(rsyncLog) ? readFileSync(rsyncLog, 'utf8') : ''}`);
    assert.equal(rsyncs.length, 1, 'one rsync, through the Remote');
    assert.match(rsyncs[0]!.text, new RegExp(`/srv/${SITE}/releases/${fake.get('web1')!.switches[0]}`), 'into the new release folder');
  });

  it('(iv) --dry-run connects nowhere, runs no rsync, and prints every command it would run', async () => {
    const fake = nodes('web1');
    const kit = new RecordingKit({ ...quiet, dryRun: true, quiet: false }, project(), fake);
    if (existsSync(rsyncLog)) rmSync(rsyncLog);
    let printed = '';
    const write = process.stdout.write.bind(process.stdout);
    // The CLI writes strings; the test runner's own messages (binary) pass through.
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      if (typeof chunk !== 'string') return write(chunk, ...rest);
      printed += chunk;
      return true;
    }) as typeof process.stdout.write;
    try {
      await deployCommand(kit, 'web1', {});
    } finally {
      process.stdout.write = write;
    }
    assert.deepEqual(kit.connected, [], 'no connection was made');
    assert.deepEqual(kit.effects, [], 'no remote effect');
    assert.ok(!existsSync(rsyncLog), `rsync ran: ${existsSync(rsyncLog) ? readFileSync(rsyncLog, 'utf8') : ''}`);
    assert.equal(fake.get('web1')!.current, LIVE);
    // The commands a deploy runs, in order: lock and probe, rsync, switch, health check, record (with the unlock).
    const markers = ['echo ---locked---', `rsync `, `/srv/${SITE}/releases/`, "echo 'kraftwerk: switched'", "-w '%{http_code}'", 'could not write the release record', 'Dry run: nothing was changed on web1.'];
    let at = 0;
    for (const m of markers) {
      const i = printed.indexOf(m, at);
      assert.ok(i >= 0, `the dry run prints ${JSON.stringify(m)} (after the ones before it)`);
      at = i;
    }
    assert.match(printed, /^\[web1\] \$ /m, 'commands are shown as [node] $ …');
  });
});
