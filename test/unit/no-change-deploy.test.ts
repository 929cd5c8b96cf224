// The no-change fast path of a deploy (issue 15), without a server: the real deployCommand against
// recording Remotes whose nodes keep the release records deploys write (test/helpers/recording-remote.ts).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { deployCommand } from '../../core/cli/actions/deploy.ts';
import { fakeNodes, type LoggedLines, orchestrationProject, quiet, RecordingKit } from '../helpers/recording-remote.ts';

/** A deploy of `dir` to `node`; what it did on the nodes (from `kit.effects` onwards) and what it said. */
async function deploy(dir: string, fake: ReturnType<typeof fakeNodes>, node: string, options: { force?: boolean } = {}) {
  const logged: LoggedLines = { info: [], warn: [] };
  const kit = new RecordingKit({ ...quiet, quiet: false }, dir, fake, logged);
  await deployCommand(kit, node, options);
  return { effects: kit.effects, said: logged.info.join('\n') };
}

describe('a deploy with nothing to change', () => {
  it('checks the live site and ends "already live": no rsync, no file, no switch, the lock released', async () => {
    const dir = orchestrationProject();
    const fake = fakeNodes('web1');
    const first = await deploy(dir, fake, 'web1');
    const live = fake.get('web1')!.current!;
    assert.match(first.said, /^Deployed /m, 'the first deploy makes a release');

    const again = await deploy(dir, fake, 'web1');
    assert.match(again.said, new RegExp(`^already live: ${live} \\(no change\\)$`, 'm'), again.said);
    assert.equal(fake.get('web1')!.current, live, 'nothing switched');
    assert.deepEqual(
      again.effects.map((e) => e.op),
      ['exec', 'exec', 'exec'],
      `three commands: the lock with the probe, the health check, the unlock:\n${again.effects.map((e) => e.text).join('\n---\n')}`,
    );
    assert.match(again.effects[1]!.text, /-w '%\{http_code\}'/);
    assert.equal(fake.get('web1')!.lockToken, undefined, 'the lock was released');
  });

  it('one changed file, or --force, makes a new release', async () => {
    const dir = orchestrationProject();
    const fake = fakeNodes('web1');
    await deploy(dir, fake, 'web1');
    writeFileSync(path.join(dir, 'extra.py'), 'X = 1\n');
    const changed = await deploy(dir, fake, 'web1');
    assert.match(changed.said, /^Deployed /m, changed.said);
    const forced = await deploy(dir, fake, 'web1', { force: true });
    assert.match(forced.said, /^Deployed /m, forced.said);
    assert.equal(fake.get('web1')!.switches.length, 3);
  });

  it('a group takes the fast path only when every node is unchanged', async () => {
    const dir = orchestrationProject();
    const fake = fakeNodes('web1', 'web2');
    await deploy(dir, fake, 'web');
    assert.match((await deploy(dir, fake, 'web')).said, /^already live: \S+ \(no change\)$/m);
    // web2's live release is another one (deployed from elsewhere): both nodes get the new release.
    const web2 = fake.get('web2')!;
    web2.records.set(web2.current!, JSON.stringify({ id: web2.current, status: 'live', fingerprint: 'other' }));
    const r = await deploy(dir, fake, 'web');
    assert.match(r.said, /^Deployed /m, r.said);
    assert.equal(fake.get('web1')!.switches.length, 2, 'the unchanged node was deployed too');
  });
});
