/**
 * What says on a node that a site is a preview, and of which site: a marker
 * `preview.json` in the site's registration folder /etc/kraftwerk/sites/<site>/
 * (root's, 0755; the marker 0644, written by root with the deploy's other
 * files; no site can write either). `kraftwerk previews` lists what the
 * markers say, so the list is what is on the node, not what some machine
 * remembers; destroy removes the folder with the site.
 */
import { SITES_DIR, type Site } from '../config/site.ts';
import { raw, type Script, sh } from '../shell/sh.ts';

export const PREVIEW_MARKER = 'preview.json';

export interface PreviewMarker {
  /** The site this one previews. */
  of: string;
  /** The preview's NAME. */
  name: string;
  domain: string;
  /** When the preview was first deployed (ISO time); kept by every later deploy. */
  created: string;
}

export function previewMarkerPath(siteName: string): string {
  return `${SITES_DIR}/${siteName}/${PREVIEW_MARKER}`;
}

/** The marker's text: one line of JSON. The same for every deploy of the preview, so a redeploy leaves it unchanged. */
export function previewMarkerContent(site: Site, existing: string | undefined, now = new Date()): string {
  const before = parsePreviewMarker(existing ?? '');
  const marker: PreviewMarker = {
    of: site.preview!.of,
    name: site.preview!.name,
    domain: site.canonicalDomain,
    created: before?.created ?? now.toISOString().replace(/\.\d+Z$/, 'Z'),
  };
  return `${JSON.stringify(marker)}\n`;
}

export function parsePreviewMarker(text: string): PreviewMarker | undefined {
  try {
    const m = JSON.parse(text) as Partial<PreviewMarker>;
    if (typeof m.of !== 'string' || typeof m.name !== 'string' || typeof m.created !== 'string' || typeof m.domain !== 'string') return undefined;
    return m as PreviewMarker;
  } catch {
    return undefined;
  }
}

/** Why deploying `site` (a preview) would take over another site of the node, or undefined. `marker` is the node's, if any. */
export function previewConflict(site: Site, marker: string | undefined, siteExists: boolean): string | undefined {
  if (marker === undefined) {
    return siteExists ? `${site.name} is a site on this node that is not a preview of ${site.preview!.of}` : undefined;
  }
  const found = parsePreviewMarker(marker);
  if (found?.of !== site.preview!.of) return `${site.name} on this node is ${found ? `a preview of ${found.of}` : 'marked as a preview, but its marker is unreadable'}, not of ${site.preview!.of}`;
  return undefined;
}

/**
 * Read-only: one line per site of the node that is a preview (of any site), `<site> <live release or -> <marker json>`.
 * The sites' folders are /srv/<site> (sitePaths), the one layout of every node.
 */
export function listPreviewsCommand(): Script {
  return sh`for f in ${raw(SITES_DIR)}/*/${raw(PREVIEW_MARKER)}; do
  [ -f "$f" ] || continue
  n=$(basename "$(dirname "$f")")
  cur=$(basename "$(readlink "/srv/$n/current" 2>/dev/null)" 2>/dev/null)
  printf '%s %s %s\\n' "$n" "\${cur:--}" "$(tr -d '\\n' < "$f")"
done; true`;
}

export interface PreviewOnNode extends PreviewMarker {
  site: string;
  /** The live release's id, undefined when none is live (a first deploy failed). */
  live?: string;
}

/** The previews of `of` in the output of listPreviewsCommand, oldest first. */
export function parsePreviewList(output: string, of: string): PreviewOnNode[] {
  const out: PreviewOnNode[] = [];
  for (const line of output.split('\n')) {
    const m = /^(\S+) (\S+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const marker = parsePreviewMarker(m[3]!);
    if (!marker || marker.of !== of) continue;
    out.push({ ...marker, site: m[1]!, live: m[2] === '-' ? undefined : m[2] });
  }
  return out.sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name));
}

/** How long ago `iso` was, in the largest unit that fits: `45s`, `12m`, `3h`, `5d`. */
export function formatAge(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(s)) return '?';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}
