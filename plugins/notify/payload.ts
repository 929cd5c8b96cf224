/**
 * What a webhook receives: one JSON object per outcome, pure (no clock, no network), so that
 * tests pin it exactly. `text` is the line a Slack or Mattermost incoming webhook shows as it
 * is; the other fields are for receivers of one's own.
 */
import type { OutcomeContext } from '../../core/index.ts';

/** The JSON POSTed to a webhook. Field names are part of the interface: add, never rename. */
export interface NotifyPayload {
  /** One human line (Slack's and Mattermost's `text`). */
  text: string;
  site: string;
  /** deployed, failed or rolled_back. */
  status: OutcomeContext['status'];
  /** The command that ended: deploy or rollback. */
  command: OutcomeContext['command'];
  nodes: string[];
  /** The release id the command put live (or tried to); null when a rollback failed before it chose one. */
  release: string | null;
  /** The release that was live before; null on a first deploy. */
  previous_release: string | null;
  /** The git revision of the release (`-dirty` with uncommitted changes); null outside a git checkout. */
  revision: string | null;
  /** Who ran the command (user@host). */
  deployer: string;
  duration_seconds: number;
  /** Where the site answers. */
  url: string;
  /** Why it failed (status failed), else null. */
  error: string | null;
}

/** Slack reads `&`, `<` and `>` as markup (links, mentions): escaped, they show as written (Mattermost decodes them too). */
function chatText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** An error as one short line: its first line, at most 300 characters. */
function oneLine(message: string): string {
  const first = message.split('\n').find((l) => l.trim())?.trim() ?? message.trim();
  return first.length > 300 ? `${first.slice(0, 299)}…` : first;
}

/** Seconds with one decimal. */
function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}

/** The human line: what happened to which site, where, by whom, how long it took. */
export function outcomeText(o: OutcomeContext): string {
  const nodes = o.nodes.join(', ');
  const release = o.release ? `release ${o.release.id}${o.release.revision ? ` (${o.release.revision})` : ''}` : undefined;
  const took = `${seconds(o.durationMs)} s`;
  let line: string;
  if (o.status === 'deployed') line = `${o.site.name}: deployed ${release} to ${nodes} in ${took} by ${o.deployer}: ${o.url}`;
  else if (o.status === 'rolled_back') line = `${o.site.name}: rolled back ${nodes} to ${release} in ${took} by ${o.deployer}`;
  else if (o.command === 'deploy') line = `${o.site.name}: deploy of ${release} to ${nodes} FAILED after ${took} (by ${o.deployer}): ${oneLine(o.error ?? 'unknown error')}`;
  else line = `${o.site.name}: rollback of ${nodes}${release ? ` to ${release}` : ''} FAILED after ${took} (by ${o.deployer}): ${oneLine(o.error ?? 'unknown error')}`;
  return chatText(line);
}

export function outcomePayload(o: OutcomeContext): NotifyPayload {
  return {
    text: outcomeText(o),
    site: o.site.name,
    status: o.status,
    command: o.command,
    nodes: [...o.nodes],
    release: o.release?.id ?? null,
    previous_release: o.release?.previous ?? null,
    revision: o.release?.revision ?? null,
    deployer: o.deployer,
    duration_seconds: seconds(o.durationMs),
    url: o.url,
    error: o.status === 'failed' ? oneLine(o.error ?? 'unknown error') : null,
  };
}
