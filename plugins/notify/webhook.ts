/**
 * Sending one payload to one webhook, from the deploying machine (never from a node): Node's
 * fetch, bounded by a timeout, with failures as plain sentences for a warning.
 */
import type { NotifyPayload } from './payload.ts';

/** How long a webhook may take to answer before it is given up: a deploy's end is not held up longer. */
export const WEBHOOK_TIMEOUT_MS = 5000;

/**
 * A webhook URL as output shows it: its origin only. Slack's and Mattermost's URLs hold their
 * token in the path, and whoever can read the deploy's log (a CI job's) could post with it.
 */
export function shownUrl(url: string): string {
  const u = new URL(url);
  return u.pathname === '/' && !u.search ? u.origin : `${u.origin}/…`;
}

/** Why the webhook did not take the payload, as a sentence; a failure of fetch has its reason in `cause`. */
function failureReason(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs / 1000} s`;
  const cause = err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.code) return `${cause.code}${cause.message && !cause.message.includes(cause.code) ? ` (${cause.message})` : ''}`;
  return cause?.message ?? (err instanceof Error ? err.message : String(err));
}

/**
 * POST `payload` as JSON to `url`. Resolves when the webhook answered 2xx; rejects with an Error
 * saying why not (refused, timed out, answered 404 with its first words). A redirect is a failure:
 * fetch would follow a 301/302 with a GET and lose the payload.
 */
export async function postWebhook(url: string, payload: NotifyPayload, { timeoutMs = WEBHOOK_TIMEOUT_MS } = {}): Promise<void> {
  // One signal for the request and the body: a receiver that answers and then stalls is given up too.
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  let body: string;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'kraftwerk' },
      body: JSON.stringify(payload),
      redirect: 'manual',
      signal,
    });
    body = await res.text();
  } catch (err) {
    throw new Error(failureReason(err, timeoutMs));
  }
  if (res.status >= 200 && res.status < 300) return;
  const said = body.trim().split('\n')[0]!.slice(0, 120);
  const where = res.status >= 300 && res.status < 400 && res.headers.get('location') ? ' (a redirect: give the URL it redirects to)' : '';
  throw new Error(`answered ${res.status}${said ? ` ${JSON.stringify(said)}` : ''}${where}`);
}
