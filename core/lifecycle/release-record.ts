import { lastLines } from '../errors.ts';
import { type Script, sh } from '../shell/sh.ts';
import type { Site } from '../config/site.ts';
import type { DeployContext } from '../engine/context.ts';

/** The record a rollback brings back (keeps its deploy time and deployer). */
export const RECORD_STATE = 'core.record';

/** Sortable, readable release id: UTC time to the second. */
export function newReleaseId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** The id one second after `id` (or now, if that is later). */
export function nextReleaseId(id: string): string {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(id);
  const after = m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) + 1000 : 0;
  return newReleaseId(new Date(Math.max(after, Date.now())));
}

/** Where core keeps a release's record and the configuration files it went live with. */
export function releaseRecordPath(site: Site, id: string): string {
  return `${site.paths.state}/releases/${id}.json`;
}
export function releaseFilesPath(site: Site, id: string): string {
  return `${site.paths.state}/releases/${id}.files.json`;
}

/** Exit codes of finishReleaseCommand: the record could not be written; an old release could not be removed. */
export const RECORD_FAILED_EXIT = 10;
export const PRUNE_FAILED_EXIT = 11;

/**
 * Write the release record, then prune: release folders without a good record
 * (failed or interrupted deploys) go, and of the good ones keep_releases stay.
 * The live release and the previous one are never removed. The record is
 * written beside its place, read back and renamed into it, so a full disk
 * leaves the old record or none, never half of one; a failure of either part
 * exits RECORD_FAILED_EXIT or PRUNE_FAILED_EXIT with the reason on stderr.
 */
export function finishReleaseCommand(site: Site, record: Record<string, unknown>, previous: string | undefined): Script {
  const p = site.paths;
  const id = String(record.id);
  const prev = previous ?? id;
  const others = Math.max(site.config.keep_releases - 1 - (previous ? 1 : 0), 0);
  const state = `${p.state}/releases`;
  const file = releaseRecordPath(site, id);
  const json = JSON.stringify(record);
  return sh`if ! { install -d -m 0700 ${state} && printf '%s\n' ${json} > ${`${file}.tmp`} && printf '%s\n' ${json} | cmp -s - ${`${file}.tmp`} && mv -f ${`${file}.tmp`} ${file}; }; then
  rm -f ${`${file}.tmp`}; echo ${`kraftwerk: could not write the release record ${file}`} >&2; exit ${RECORD_FAILED_EXIT}
fi
cd ${p.releases} || exit 0
kw_failed=
for d in */; do old=\${d%/}; [ "$old" = ${id} ] || [ "$old" = ${prev} ] || grep -q '"status":"live"' ${state}/"$old.json" 2>/dev/null || rm -rf -- "$old" ${state}/"$old.json" ${state}/"$old.files.json" || kw_failed="$kw_failed $old"; done
for old in $(ls -1 | sort -r | grep -vx -e ${id} -e ${prev} | tail -n +${others + 1}); do rm -rf -- "$old" ${state}/"$old.json" ${state}/"$old.files.json" || kw_failed="$kw_failed $old"; done
if [ -n "$kw_failed" ]; then printf 'kraftwerk: could not remove the old release(s)%s from %s\\n' "$kw_failed" ${p.releases} >&2; exit ${PRUNE_FAILED_EXIT}; fi`;
}

/**
 * What a failed finishReleaseCommand means for the user. The release is live
 * and passed its health check when this runs, so neither failure fails the
 * deploy: a failed deploy would roll back (or make CI deploy again) a release
 * that works. Each is a loud warning saying what is wrong and what to do.
 */
export function reportFinish(ctx: DeployContext, code: number | null, stderr: string): void {
  if (code === 0) return;
  const why = lastLines(stderr.trim(), 4);
  const id = ctx.release.id;
  if (code === PRUNE_FAILED_EXIT) {
    ctx.log.warn(`${ctx.node}: release ${id} is live, but old releases could not be removed: ${why}\n  Check the free space and the folder ${ctx.site.paths.releases}; the next deploy tries again.`);
    return;
  }
  ctx.log.warn(
    `${ctx.node}: release ${id} is live and healthy, but its record could not be written (exit ${code}): ${why}\n` +
      `  Until it is, \`kraftwerk releases\` does not show it as live and a later rollback does not come back to it.\n` +
      `  Free space on ${ctx.node} (df -h ${ctx.site.paths.root}), then deploy again.`,
  );
}
