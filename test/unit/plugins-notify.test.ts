// The notify plugin without a network: its settings (one webhook or a list, `on:` defaulting to
// every outcome, URLs checked with errors naming the key), the JSON a webhook receives and its
// `text` line, what output shows of a URL, and core's outcome hook as the plugin sees it (a tap
// that throws only warns, and the taps after it still run).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../core/config/load.ts';
import { createHooks, interceptHooks } from '../../core/engine/hooks.ts';
import type { OutcomeContext } from '../../core/engine/context.ts';
import { ConfigError } from '../../core/errors.ts';
import { reportOutcome } from '../../core/lifecycle/outcome.ts';
import notify from '../../plugins/notify/index.ts';
import { outcomePayload, outcomeText } from '../../plugins/notify/payload.ts';
import { notifyWebhooks, webhookUrlProblem } from '../../plugins/notify/settings.ts';
import { postWebhook, shownUrl } from '../../plugins/notify/webhook.ts';
import { builtins } from '../helpers/config.ts';
import { testSite } from '../helpers/site.ts';
import { webhookReceiver } from '../helpers/webhook-receiver.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'kw-notify-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function configProblems(notifyYaml: string): Promise<string[]> {
  const dir = mkdtempSync(path.join(scratch, 'p-'));
  writeFileSync(path.join(dir, 'kraftwerk.yaml'), `domain: shop.example.com\nnotify:${notifyYaml}\n`);
  try {
    await loadConfig({ cwd: dir, knownServices: [], plugins: builtins });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.exitCode, 2);
    return err.message.split('\n');
  }
  return [];
}

const URL_EXPECTED = 'expected an http:// or https:// URL such as https://hooks.slack.com/services/…';

describe('notify: settings', () => {
  test('one webhook or a list, `on:` every outcome unless it says which', () => {
    assert.deepEqual(notifyWebhooks(testSite()), [], 'no notify: no webhooks');
    assert.deepEqual(notifyWebhooks(testSite({ notify: { webhook: 'https://hooks.slack.com/services/T/B/X' } })), [
      { webhook: 'https://hooks.slack.com/services/T/B/X', on: ['deployed', 'failed', 'rolled_back'] },
    ]);
    assert.deepEqual(
      notifyWebhooks(testSite({ notify: [{ webhook: 'http://127.0.0.1:9000/deploys' }, { webhook: 'https://chat.example/hooks/abc', on: ['failed'] }] })),
      [
        { webhook: 'http://127.0.0.1:9000/deploys', on: ['deployed', 'failed', 'rolled_back'] },
        { webhook: 'https://chat.example/hooks/abc', on: ['failed'] },
      ],
    );
  });

  test('a URL that is not http(s), holds a password or a line break, or is no URL at all, is refused with the key', async () => {
    assert.deepEqual(await configProblems(' {webhook: "ftp://files.example/x"}'), [
      `kraftwerk.yaml:2: notify.webhook: ${URL_EXPECTED}, found the text "ftp://files.example/x": its scheme is ftp; webhooks are sent over http or https only (setting of plugin notify)`,
    ]);
    assert.deepEqual(await configProblems('\n  - webhook: https://hooks.slack.com/services/T/B/X\n  - webhook: "https://user:pw@chat.example/hook"'), [
      `kraftwerk.yaml:4: notify[1].webhook: ${URL_EXPECTED}, found the text "https://user:pw@chat.example/hook": it holds a user name or password, which is not sent: put the token where the service says (path or query) (setting of plugin notify)`,
    ]);
    assert.deepEqual(await configProblems(' {webhook: "https://chat.example/a\\nb"}'), [
      `kraftwerk.yaml:2: notify.webhook: ${URL_EXPECTED}, found the text "https://chat.example/a\\nb": it contains a space, a line break or a control character (setting of plugin notify)`,
    ]);
    assert.deepEqual(await configProblems(' {webhook: hooks.slack.com/services/T/B/X}'), [
      `kraftwerk.yaml:2: notify.webhook: ${URL_EXPECTED}, found the text "hooks.slack.com/services/T/B/X": it is not a URL (setting of plugin notify)`,
    ]);
    assert.deepEqual(await configProblems(' {}'), [`kraftwerk.yaml:2: notify.webhook: missing; ${URL_EXPECTED} (setting of plugin notify)`]);
  });

  test('`on:` names outcomes, at least one; notify: is a mapping or a list of them', async () => {
    assert.deepEqual(await configProblems(' {webhook: "https://chat.example/h", on: [deploy]}'), [
      'kraftwerk.yaml:2: notify.on[0]: expected "deployed" or "failed" or "rolled_back", found the text "deploy" (setting of plugin notify)',
    ]);
    assert.deepEqual(await configProblems(' {webhook: "https://chat.example/h", on: []}'), [
      'kraftwerk.yaml:2: notify.on: expected a list of at least 1 item, found an empty list (setting of plugin notify)',
    ]);
    assert.deepEqual(await configProblems(' https://chat.example/h'), [
      'kraftwerk.yaml:2: notify: expected a mapping {webhook, on} or a list of them, found the text "https://chat.example/h" (setting of plugin notify)',
    ]);
  });

  test('webhookUrlProblem accepts what Slack, Mattermost and a local receiver use', () => {
    for (const url of ['https://hooks.slack.com/services/T000/B000/XXXX', 'https://chat.example.com/hooks/3x4mpl3', 'http://127.0.0.1:8080/', 'https://[::1]:9/x?token=a&b=c']) {
      assert.equal(webhookUrlProblem(url), undefined, url);
    }
  });
});

const outcome = (over: Partial<OutcomeContext> = {}): OutcomeContext => ({
  site: testSite({}, 'shop'),
  command: 'deploy',
  status: 'deployed',
  nodes: ['web1', 'web2'],
  release: { id: '20261202T010203Z', revision: '0123456789ab', previous: '20261201T000000Z' },
  deployer: 'alice@laptop',
  durationMs: 42_149,
  url: 'https://shop.example/',
  options: { dryRun: false, verbose: false, quiet: false },
  log: { info() {}, warn() {} },
  ...over,
});

describe('notify: the JSON a webhook receives', () => {
  test('a deploy that went live: every field, and the text line Slack shows', () => {
    assert.deepEqual(outcomePayload(outcome()), {
      text: 'shop: deployed release 20261202T010203Z (0123456789ab) to web1, web2 in 42.1 s by alice@laptop: https://shop.example/',
      site: 'shop',
      status: 'deployed',
      command: 'deploy',
      nodes: ['web1', 'web2'],
      release: '20261202T010203Z',
      previous_release: '20261201T000000Z',
      revision: '0123456789ab',
      deployer: 'alice@laptop',
      duration_seconds: 42.1,
      url: 'https://shop.example/',
      error: null,
    });
  });

  test('a failed deploy says why, on one line, with Slack markup escaped; no git, no previous release: null', () => {
    const p = outcomePayload(
      outcome({
        status: 'failed',
        nodes: ['web1'],
        release: { id: '20261202T010203Z' },
        durationMs: 800,
        error: 'deploy of release 20261202T010203Z failed on web1: health check failed: <html> & 500\n  more output',
      }),
    );
    assert.equal(p.text, 'shop: deploy of release 20261202T010203Z to web1 FAILED after 0.8 s (by alice@laptop): deploy of release 20261202T010203Z failed on web1: health check failed: &lt;html&gt; &amp; 500');
    assert.equal(p.error, 'deploy of release 20261202T010203Z failed on web1: health check failed: <html> & 500');
    assert.equal(p.status, 'failed');
    assert.equal(p.revision, null);
    assert.equal(p.previous_release, null);
  });

  test('a rollback, and one that failed before it chose a release', () => {
    assert.equal(
      outcomeText(outcome({ command: 'rollback', status: 'rolled_back', nodes: ['web1'], release: { id: '20261201T000000Z', previous: '20261202T010203Z' }, durationMs: 3000 })),
      'shop: rolled back web1 to release 20261201T000000Z in 3 s by alice@laptop',
    );
    const failed = outcomePayload(outcome({ command: 'rollback', status: 'failed', nodes: ['web1'], release: undefined, error: 'there is no earlier good release on web1 to roll back to' }));
    assert.equal(failed.text, 'shop: rollback of web1 FAILED after 42.1 s (by alice@laptop): there is no earlier good release on web1 to roll back to');
    assert.equal(failed.release, null);
    assert.equal(failed.command, 'rollback');
  });

  test('output shows only the origin of a webhook URL (its path is often the token)', () => {
    assert.equal(shownUrl('https://hooks.slack.com/services/T000/B000/XXXX'), 'https://hooks.slack.com/…');
    assert.equal(shownUrl('http://127.0.0.1:8080/'), 'http://127.0.0.1:8080');
    assert.equal(shownUrl('https://chat.example/?token=s3cret'), 'https://chat.example/…');
  });
});

describe('notify: sending', () => {
  test('a webhook that answers 404, redirects, or does not answer in time rejects with why', async () => {
    const payload = outcomePayload(outcome());
    const missing = await webhookReceiver((res) => res.writeHead(404).end('no_service\nmore'));
    const moved = await webhookReceiver((res) => res.writeHead(302, { location: 'https://elsewhere.example/' }).end());
    const silent = await webhookReceiver(() => {});
    try {
      await assert.rejects(postWebhook(missing.url, payload), { message: 'answered 404 "no_service"' });
      await assert.rejects(postWebhook(moved.url, payload), { message: 'answered 302 (a redirect: give the URL it redirects to)' });
      await assert.rejects(postWebhook(silent.url, payload, { timeoutMs: 200 }), { message: 'no answer within 0.2 s' });
      assert.deepEqual(JSON.parse(missing.bodies[0]!), payload, 'the JSON was sent as it is');
    } finally {
      await Promise.all([missing.close(), moved.close(), silent.close()]);
    }
  });

  test('the plugin posts to the webhooks whose `on:` lists the outcome; a dry run posts nothing and says what it would', async () => {
    const hook = await webhookReceiver();
    try {
      const site = testSite({ notify: [{ webhook: hook.url, on: ['failed'] }, { webhook: `${hook.url}/all` }] });
      const hooks = createHooks();
      interceptHooks(hooks);
      notify.apply!(hooks, site);
      const info: string[] = [];
      const warn: string[] = [];
      const log = { info: (m: string) => info.push(m), warn: (m: string) => warn.push(m) };
      await reportOutcome(hooks, outcome({ site, log }));
      assert.equal(hook.bodies.length, 1, 'deployed: only the webhook without `on:` is told');
      await reportOutcome(hooks, outcome({ site, log, status: 'failed', error: 'boom' }));
      assert.equal(hook.bodies.length, 3, 'failed: both are told');
      await reportOutcome(hooks, outcome({ site, log, options: { dryRun: true, verbose: false, quiet: false } }));
      assert.equal(hook.bodies.length, 3, 'a dry run sends nothing');
      assert.equal(info.length, 1);
      assert.match(info[0]!, /^notify: would POST to http:\/\/127\.0\.0\.1:\d+\/…: \{"text":"shop: deployed release /);
      assert.ok(!info[0]!.includes('s3cret'), 'the URL\'s path is not shown');
      assert.deepEqual(warn, []);
    } finally {
      await hook.close();
    }
  });
});

describe('core: the outcome hook', () => {
  test("a tap that throws is a warning naming the plugin; the taps after it still run, and reportOutcome resolves", async () => {
    const hooks = createHooks();
    interceptHooks(hooks);
    const heard: string[] = [];
    hooks.outcome.tapPromise('first', async () => {
      throw new Error('chat is down');
    });
    hooks.outcome.tap('second', (ctx) => {
      heard.push(ctx.status);
    });
    const warn: string[] = [];
    await reportOutcome(hooks, outcome({ log: { info() {}, warn: (m) => warn.push(m) } }));
    assert.deepEqual(heard, ['deployed']);
    assert.equal(warn.length, 1);
    assert.match(warn[0]!, /^first failed in outcome\b.*chat is down/);
  });
});
