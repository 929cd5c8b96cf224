/**
 * The settings of the notify plugin: `notify:` in kraftwerk.yaml, one webhook or a list of them.
 * Where the values end up:
 *
 *     key              reaches                                        checked as
 *     notify.webhook   the URL Node's fetch POSTs to, on this machine  an http or https URL, no user:password, one line
 *     notify.on        which outcomes are sent there                   deployed, failed, rolled_back
 *
 * Nothing of it reaches a node, a shell or a config file. A webhook URL is often a secret (Slack's
 * and Mattermost's hold their token in the path): output shows only its origin (shownUrl).
 */
import { type Site, settingsOf, z } from '../../core/index.ts';

/** The outcomes a webhook can be told of, as `on:` names them (those of the `outcome` hook). */
export const NOTIFY_EVENTS = ['deployed', 'failed', 'rolled_back'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

const URL_EXPECTED = 'an http:// or https:// URL such as https://hooks.slack.com/services/…';

/** Why `text` is no URL a webhook can be sent to, or undefined when it is one. */
export function webhookUrlProblem(text: string): string | undefined {
  // The URL parser drops tabs and newlines silently: what was written is what is sent to, or nothing.
  if (/[\s\u0000-\u001f\u007f]/.test(text)) return 'it contains a space, a line break or a control character';
  if (!URL.canParse(text)) return 'it is not a URL';
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `its scheme is ${url.protocol.slice(0, -1)}; webhooks are sent over http or https only`;
  if (!url.hostname) return 'it names no host';
  // fetch refuses such a URL; a service's token goes in the path or the query.
  if (url.username || url.password) return 'it holds a user name or password, which is not sent: put the token where the service says (path or query)';
  return undefined;
}

const webhookUrl = z.string({ error: URL_EXPECTED }).superRefine((s, ctx) => {
  const detail = webhookUrlProblem(s);
  if (detail) ctx.addIssue({ code: 'custom', message: URL_EXPECTED, params: { detail } });
});

const webhook = z.strictObject({
  webhook: webhookUrl.describe('URL the JSON is POSTed to (a Slack or Mattermost incoming webhook, or any receiver)'),
  on: z
    .array(z.enum(NOTIFY_EVENTS))
    .min(1)
    .default([...NOTIFY_EVENTS])
    .describe('Which outcomes are sent: deployed, failed, rolled_back (default: all three)'),
});

/** The keys of kraftwerk.yaml the notify plugin owns. */
export const NOTIFY_SETTINGS = {
  notify: z
    .union([webhook, z.array(webhook)], { error: 'a mapping {webhook, on} or a list of them' })
    .optional()
    .describe('Webhooks told when a deploy or a rollback ends: {webhook: URL, on: [deployed, failed, rolled_back]} or a list of them'),
};

export type Webhook = z.output<typeof webhook>;

/** The site's webhooks, one or many as written, as a list (empty without `notify:`). */
export function notifyWebhooks(site: Site): Webhook[] {
  const { notify } = settingsOf(site, NOTIFY_SETTINGS);
  if (!notify) return [];
  return Array.isArray(notify) ? notify : [notify];
}
