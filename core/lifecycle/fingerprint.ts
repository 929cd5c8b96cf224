import type { Site } from '../config/site.ts';
import { type DeployContext, FingerprintParts } from '../engine/context.ts';
import { type Hooks, lifecycleHooks } from '../engine/hooks.ts';
import { findRsyncExcludeFile, listReleaseTree } from '../remote/rsync.ts';
import { kraftwerkVersion } from '../version.ts';
import { computeSiteEnvironment } from './site-environment.ts';
import { resolveSecrets } from './site-secrets.ts';

const trees = new WeakMap<Site, Promise<string>>();

/**
 * The project's files as a deploy would send them (see listReleaseTree), listed once per run: a
 * group's nodes share the listing, and a deploy starts it before it connects so the two overlap.
 */
export function releaseTree(site: Site): Promise<string> {
  let tree = trees.get(site);
  if (!tree) {
    tree = listReleaseTree({ source: site.sourceDir, excludes: site.config.exclude, excludeFromFile: findRsyncExcludeFile(site.sourceDir) });
    // Nobody may wait for it yet (the deploy fails before its check): that must not end the process.
    tree.catch(() => undefined);
    trees.set(site, tree);
  }
  return tree;
}

/**
 * What would go live on this node, as one digest: Kraftwerk's version (its templates and
 * commands), the project's files, kraftwerk.yaml as validated (core's keys and every plugin's
 * settings), the environment the release would get (plugins' variables, `environ:`, the `secrets:`
 * values and what `env set` stored on the node: only its digest is kept), and what each plugin
 * adds through the `fingerprint` extension point. Needs the probe's facts (the node's
 * environment); costs no command of its own.
 */
export async function releaseFingerprint(hooks: Hooks, ctx: DeployContext): Promise<FingerprintParts> {
  const { site } = ctx;
  const parts = new FingerprintParts();
  parts.add('kraftwerk', await kraftwerkVersion());
  parts.add('tree', await releaseTree(site));
  parts.add('config', JSON.stringify(site.config));
  parts.add('settings', JSON.stringify(site.settings));
  const { envFile } = await computeSiteEnvironment(hooks, site, ctx, ctx.facts.env, ctx.facts.envLocal, await resolveSecrets(site));
  parts.add('environment', envFile);
  await lifecycleHooks(hooks).fingerprint.promise(ctx, parts);
  return parts;
}
