/**
 * notify: tells webhooks how a deploy or a rollback ended (`notify:`), the second example of a
 * plugin (docs/plugins.md) as it uses only what a project-local one can: its settings, and the
 * `outcome` hook core calls once per command, for all its nodes.
 *
 * The JSON (payload.ts) is POSTed from the deploying machine, to every webhook whose `on:` lists
 * the outcome, all at once, each given up after a few seconds. A webhook that fails is a warning:
 * the command's result and exit code stay what they were. Under --dry-run nothing is sent; the
 * output says what would be. Nothing of it touches a node.
 */
import { definePlugin } from '../../core/index.ts';
import { outcomePayload } from './payload.ts';
import { NOTIFY_SETTINGS, notifyWebhooks } from './settings.ts';
import { postWebhook, shownUrl } from './webhook.ts';

const PLUGIN_NAME = 'notify';

export default definePlugin({
  name: PLUGIN_NAME,
  description: 'webhooks told when a deploy or a rollback ends (`notify:`): JSON that Slack and Mattermost show as it is',
  settings: NOTIFY_SETTINGS,
  init: {
    examples: () => ({ notify: { webhook: 'https://hooks.slack.com/services/T000/B000/XXXXXXXX', on: ['deployed', 'failed', 'rolled_back'] } }),
  },
  apply(hooks, site) {
    const webhooks = notifyWebhooks(site);
    // Without `notify:` the plugin taps nothing (`kraftwerk plugins` shows it so).
    if (!webhooks.length) return;

    hooks.outcome.tapPromise(PLUGIN_NAME, async (ctx) => {
      const targets = webhooks.filter((w) => w.on.includes(ctx.status));
      if (!targets.length) return;
      const payload = outcomePayload(ctx);
      if (ctx.options.dryRun) {
        for (const w of targets) ctx.log.info(`${PLUGIN_NAME}: would POST to ${shownUrl(w.webhook)}: ${JSON.stringify(payload)}`);
        return;
      }
      await Promise.all(
        targets.map(async (w) => {
          try {
            await postWebhook(w.webhook, payload);
            if (ctx.options.verbose) ctx.log.info(`${PLUGIN_NAME}: told ${shownUrl(w.webhook)} (${ctx.status})`);
          } catch (err) {
            ctx.log.warn(`${PLUGIN_NAME}: webhook ${shownUrl(w.webhook)} not told of "${ctx.status}": ${(err as Error).message} (the ${ctx.command} itself is not affected)`);
          }
        }),
      );
    });
  },
});
