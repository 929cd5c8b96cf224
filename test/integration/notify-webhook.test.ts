// What a deploy tells a webhook (issue 17, notifications): the real `deployCommand` and
// `rollbackCommand` run through the recording Remote (test/helpers/recording-remote.ts) for a
// project with `notify:` pointing at a receiver on 127.0.0.1, and the test reads the JSON that
// arrived: a deploy that went live, a group deploy that failed its health check on one node
// (and was rolled back), a rollback, a dry run (nothing sent, the output says what would be),
// and a dead webhook, which only warns: the deploy succeeds all the same.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deployCommand } from '../../core/cli/actions/deploy.ts';
import { rollbackCommand } from '../../core/cli/actions/rollback.ts';
import {
  fakeNodes,
  installRsyncShim,
  LIVE,
  type LoggedLines,
  orchestrationProject,
  quiet,
  RecordingKit,
  SITE,
} from '../helpers/recording-remote.ts';
import { deadWebhookUrl, type WebhookReceiver, webhookReceiver } from '../helpers/webhook-receiver.ts';

let shim: ReturnType<typeof installRsyncShim>;
let hook: WebhookReceiver;
before(async () => {
  shim = installRsyncShim();
  hook = await webhookReceiver();
});
after(async () => {
  shim.restore();
  await hook.close();
});

const notifyYaml = (...urls: string[]) => `notify:\n${urls.map((u) => `  - webhook: ${u}\n`).join('')}`;
const logged = (): LoggedLines => ({ info: [], warn: [] });

/** The payloads that arrived while `run` ran. */
async function received(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const before = hook.bodies.length;
  await run();
  return hook.json().slice(before) as Record<string, unknown>[];
}

describe('notify: the deploy tells its webhooks', () => {
  it('a deploy that went live POSTs its JSON: site, nodes, release, revision, deployer, status, duration, text', async () => {
    const fake = fakeNodes('web1');
    const lines = logged();
    const kit = new RecordingKit(quiet, orchestrationProject(notifyYaml(hook.url)), fake, lines);
    const sent = await received(() => deployCommand(kit, 'web1', {}));
    assert.equal(sent.length, 1, 'one POST');
    const p = sent[0]!;
    const release = fake.get('web1')!.switches[0]!;
    assert.equal(p.status, 'deployed');
    assert.equal(p.command, 'deploy');
    assert.equal(p.site, SITE);
    assert.deepEqual(p.nodes, ['web1']);
    assert.equal(p.release, release);
    assert.equal(p.previous_release, LIVE);
    assert.equal(p.revision, null, 'the temp project is no git checkout');
    assert.match(String(p.deployer), /^[^@\s]+@\S+$/);
    assert.equal(typeof p.duration_seconds, 'number');
    assert.equal(p.url, 'http://orch.example.com/');
    assert.equal(p.error, null);
    assert.equal(p.text, `${SITE}: deployed release ${release} to web1 in ${p.duration_seconds} s by ${p.deployer}: http://orch.example.com/`);
    assert.deepEqual(lines.warn, []);
  });

  it('a group deploy that failed on one node POSTs status failed with the error, and the deploy still fails with its own error', async () => {
    const fake = fakeNodes('web1', 'web2');
    fake.get('web2')!.newReleaseBroken = true;
    const kit = new RecordingKit(quiet, orchestrationProject(notifyYaml(hook.url)), fake, logged());
    let error: Error | undefined;
    const sent = await received(() => deployCommand(kit, 'web', {}).catch((err: Error) => (error = err)));
    assert.ok(error, 'the deploy failed');
    assert.match(error.message, /failed on web2\b.*health check failed/);
    assert.equal(sent.length, 1);
    const p = sent[0]!;
    assert.equal(p.status, 'failed');
    assert.deepEqual(p.nodes, ['web1', 'web2']);
    assert.equal(p.release, fake.get('web1')!.switches[0], 'the release it tried');
    assert.equal(p.error, error.message.split('\n')[0]);
    assert.match(String(p.text), new RegExp(`^${SITE}: deploy of release \\S+ to web1, web2 FAILED after [\\d.]+ s \\(by \\S+\\): deploy of release`));
    assert.equal(fake.get('web1')!.current, LIVE, 'and it was rolled back as before');
  });

  it('a rollback POSTs status rolled_back with the release it brought back', async () => {
    const fake = fakeNodes('web1');
    const node = fake.get('web1')!;
    node.current = '20261201T000000Z';
    node.goodReleases = [LIVE];
    const kit = new RecordingKit(quiet, orchestrationProject(notifyYaml(hook.url)), fake, logged());
    const sent = await received(() => rollbackCommand(kit, 'web1', {}));
    assert.equal(node.current, LIVE);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.status, 'rolled_back');
    assert.equal(sent[0]!.command, 'rollback');
    assert.equal(sent[0]!.release, LIVE);
    assert.equal(sent[0]!.previous_release, '20261201T000000Z');
  });

  it('a dead webhook only warns (without its token): the deploy succeeds, and the live webhook beside it is told', async () => {
    const dead = await deadWebhookUrl();
    const fake = fakeNodes('web1');
    const lines = logged();
    const kit = new RecordingKit(quiet, orchestrationProject(notifyYaml(dead, hook.url)), fake, lines);
    const sent = await received(() => deployCommand(kit, 'web1', {}));
    assert.equal(fake.get('web1')!.switches.length, 1, 'the deploy went live');
    assert.equal(sent.length, 1, 'the other webhook was told');
    assert.equal(lines.warn.length, 1, lines.warn.join('\n'));
    assert.match(lines.warn[0]!, /^notify: webhook http:\/\/127\.0\.0\.1:\d+\/… not told of "deployed": ECONNREFUSED \(the deploy itself is not affected\)$/);
    assert.ok(!lines.warn[0]!.includes('s3cret'));
  });

  it('--dry-run sends nothing and prints what it would send', async () => {
    const fake = fakeNodes('web1');
    const lines = logged();
    const kit = new RecordingKit({ ...quiet, dryRun: true }, orchestrationProject(notifyYaml(hook.url)), fake, lines);
    const write = process.stdout.write.bind(process.stdout);
    // The dry run prints its commands; the test runner's own messages (binary) pass through.
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => (typeof chunk === 'string' ? true : write(chunk, ...rest))) as typeof process.stdout.write;
    let sent: Record<string, unknown>[];
    try {
      sent = await received(() => deployCommand(kit, 'web1', {}));
    } finally {
      process.stdout.write = write;
    }
    assert.deepEqual(sent, [], 'nothing was sent');
    const would = lines.info.filter((l) => l.startsWith('notify: '));
    assert.equal(would.length, 1, lines.info.join('\n'));
    const m = /^notify: would POST to http:\/\/127\.0\.0\.1:\d+\/…: (\{.*\})$/.exec(would[0]!);
    assert.ok(m, would[0]);
    assert.equal((JSON.parse(m[1]!) as { status: string }).status, 'deployed');
    assert.equal(lines.info.at(-2), 'Dry run: nothing was changed on web1.', 'after the dry run\'s own last line');
  });
});
