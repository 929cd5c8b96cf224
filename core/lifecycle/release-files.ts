import { KraftwerkError } from '../errors.ts';
import { type Script, sh } from '../shell/sh.ts';
import type { Site } from '../config/site.ts';
import type { DeployContext } from '../engine/context.ts';
import type { RemoteFile } from '../remote/remote.ts';
import { syncAndRecord } from '../remote/syncfiles.ts';
import { pruneEnvdirCommand, withCurrentSiteVariables } from './site-environment.ts';
import { releaseFilesPath } from './release-record.ts';
import { resolveSecrets } from './site-secrets.ts';

/** The configuration files a release went live with (written beside its record). */
export function readReleaseFilesCommand(site: Site, id: string): Script {
  return sh`cat ${releaseFilesPath(site, id)}`;
}

/**
 * Write ctx.files (one round trip), together with a copy of the set kept beside the release record for rollback.
 * Files marked `atSwitch` are only recorded here: the switch writes them (see `execSwitch`).
 */
export async function writeFiles(ctx: DeployContext): Promise<string[]> {
  const files = ctx.files.all;
  const snapshot = { path: releaseFilesPath(ctx.site, ctx.release.id), content: `${JSON.stringify(files)}\n`, mode: 0o600 };
  return syncAndRecord(ctx, [...files.filter((f) => !f.atSwitch), snapshot], { unrecorded: snapshot.path });
}

/** The saved file set; a damaged one is an error that does not quote it (it holds the env's values). */
function parseSavedFiles(text: string): RemoteFile[] {
  try {
    return JSON.parse(text) as RemoteFile[];
  } catch {
    throw new KraftwerkError('the saved configuration of the release cannot be read (not JSON)', {
      hint: 'Deploy again: a deploy writes the whole configuration.',
    });
  }
}

/**
 * Put back the configuration files a release went live with (rollback, or
 * undoing a failed deploy), its environment re-merged with the site variables
 * of now. Returns the paths that changed and how the environment was made.
 */
export async function restoreFiles(ctx: DeployContext, releaseId: string): Promise<{ changed: string[]; environment?: { generated: number; site: number } }> {
  const res = await ctx.remote.exec(readReleaseFilesCommand(ctx.site, releaseId), { check: false, secretOutput: true });
  if (res.code !== 0) return { changed: [] };
  // env set since the release was deployed must not be undone: see withCurrentSiteVariables.
  const saved = parseSavedFiles(res.stdout);
  const { files, environment, envdir } = withCurrentSiteVariables(saved, `${ctx.site.paths.releases}/${releaseId}`, ctx.facts.envLocal, await resolveSecrets(ctx.site));
  for (const f of files) ctx.files.add(f);
  const changed = await syncAndRecord(ctx, files.filter((f) => !f.atSwitch));
  if (envdir) await ctx.remote.exec(pruneEnvdirCommand(envdir.dir, envdir.names));
  return { changed, environment };
}
