import { createHash } from 'node:crypto';
import path from 'node:path';
import { type Script, sh } from '../shell/sh.ts';
import type { NodeFacts } from '../engine/context.ts';
import type { Site } from '../config/site.ts';
import type { RemoteFile } from '../remote/remote.ts';

/**
 * A note on the node of what a plugin last provisioned for the site (a
 * database, a user, folders): a hash of everything that went into it. A
 * deploy reads it with its probe (`ctx.probe.read(marker.path)`) and skips
 * provisioning while it says the same (`isProvisioned`); the task that
 * provisions adds the marker to `ctx.files`, so it is written only when the
 * deploy got that far. Destroying the site removes it with the site's state.
 */
export function provisionMarker(site: Site, name: string, ...inputs: string[]): RemoteFile {
  const hash = createHash('sha256');
  for (const input of inputs) hash.update(input).update('\0');
  return {
    path: `${site.paths.state}/provisioned/${name}`,
    content: `${hash.digest('hex')}\n`,
    mode: 0o600,
    owner: 'root',
    group: 'root',
  };
}

/** The probe found `marker` on the node with the same content: provisioned as this deploy would. */
export function isProvisioned(facts: NodeFacts, marker: RemoteFile): boolean {
  return facts.files.get(marker.path) === marker.content;
}

/**
 * Write `marker` at the end of the provisioning command itself, for a task that
 * runs after core wrote `ctx.files` (a marker added there then would never be
 * written). Root's, 0600 like every marker; replaced by a rename, so a reader
 * sees the old or the new one.
 */
export function writeMarkerCommand(marker: RemoteFile): Script {
  const dir = path.posix.dirname(marker.path);
  return sh`mkdir -p ${dir} && kw_mk=$(mktemp ${`${marker.path}.XXXXXX`}) && printf '%s' ${marker.content} > "$kw_mk" && mv -f "$kw_mk" ${marker.path}`;
}
