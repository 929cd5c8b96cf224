import { createHash } from 'node:crypto';
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
