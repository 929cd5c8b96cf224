import { UsageError } from '../errors.ts';
import { type Script, raw, sh } from '../shell/sh.ts';
import type { Site } from '../config/site.ts';

/**
 * Dumps and backups of a site's data. A dump is a folder
 * /srv/<site>/backups/<id>/ into which every plugin's `dump` tap writes its
 * share (database, uploads), plus manifest.json. Backups are dumps too: the
 * scheduled ones, `kraftwerk backup`, the safety dump `load` takes first and
 * the ones `sync-services` moves between nodes; `kind` tells them apart, and
 * only scheduled/`backup` ones are rotated (the backups plugin writes the
 * script that takes the scheduled ones).
 */

export type DumpKind = 'backup' | 'dump' | 'pre-load' | 'sync';

export const MANIFEST_FILE = 'manifest.json';

export interface DumpManifest {
  kind: DumpKind;
  site: string;
  /** Plugins whose dump taps wrote into the folder. */
  plugins: string[];
  /** Who made it (user@host), or "cron". */
  by?: string;
}

export interface DumpInfo {
  id: string;
  kind: DumpKind | 'unknown';
  /** Size in KiB. */
  sizeKb: number;
  plugins: string[];
  /** When it was taken (from the id). */
  time?: string;
}

const DUMP_ID = /^(\d{8}T\d{6}Z)(-[a-z0-9-]+)?$/;

/** Sortable, readable id: UTC time to the second, plus an optional suffix. */
export function newDumpId(now = new Date(), suffix?: string): string {
  const base = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return suffix ? `${base}-${suffix}` : base;
}

/** Refuse anything but a dump id: the id becomes a path on the server. */
export function checkDumpId(id: string): string {
  if (!DUMP_ID.test(id)) {
    throw new UsageError(`${JSON.stringify(id)} is not a dump id (expected e.g. 20261125T170102Z)`, {
      hint: 'List the dumps on the node with: kraftwerk backups [node]',
    });
  }
  return id;
}

/** ISO time of a dump id. */
export function dumpTime(id: string): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z` : undefined;
}

export function dumpDir(site: Site, id: string): string {
  return `${site.paths.backups}/${checkDumpId(id)}`;
}

/** Prints one line per dump: `<id> <KiB> <manifest json on one line>`, oldest first. */
export function listDumpsCommand(site: Site): Script {
  return sh`cd ${site.paths.backups} 2>/dev/null || exit 0
for d in */; do
  d=\${d%/}
  [ -f "$d/${raw(MANIFEST_FILE)}" ] || continue
  printf '%s %s %s\\n' "$d" "$(du -sk "$d" | cut -f1)" "$(tr -d '\\n' < "$d/${raw(MANIFEST_FILE)}")"
done`;
}

export function parseDumpList(output: string): DumpInfo[] {
  const out: DumpInfo[] = [];
  for (const line of output.split('\n')) {
    const m = /^(\S+) (\d+) (.*)$/.exec(line.trim());
    if (!m || !DUMP_ID.test(m[1]!)) continue;
    let manifest: Partial<DumpManifest> = {};
    try {
      manifest = JSON.parse(m[3]!) as Partial<DumpManifest>;
    } catch {
      // A damaged manifest still lists the dump.
    }
    out.push({
      id: m[1]!,
      kind: manifest.kind ?? 'unknown',
      sizeKb: Number(m[2]),
      plugins: Array.isArray(manifest.plugins) ? manifest.plugins : [],
      time: dumpTime(m[1]!),
    });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** Make an empty folder for a dump being written (root only). */
export function prepareDumpDirCommand(dir: string): Script {
  return sh`rm -rf ${dir} && install -d -m 0700 -o root -g root ${dir}`;
}

/**
 * Finish a dump written into `partial`: write its manifest and move it to
 * `final` (a dump folder is complete or absent, never half written).
 */
export function finishDumpCommand(partial: string, final: string, manifest: DumpManifest): Script {
  return sh`printf '%s\\n' ${JSON.stringify(manifest)} > ${`${partial}/${MANIFEST_FILE}`} && mv -T ${partial} ${final}`;
}

/** Delete all but the newest `keep` dumps of kind `backup`; prints `removed <id>` for each. */
export function rotateBackupsCommand(site: Site, keep: number): Script {
  return sh`cd ${site.paths.backups} 2>/dev/null || exit 0
for d in $(ls -1 | grep -E '^[0-9]{8}T[0-9]{6}Z' | sort -r); do
  grep -q '"kind": *"backup"' "$d/${raw(MANIFEST_FILE)}" 2>/dev/null && echo "$d"
done | tail -n +${keep + 1} | while read -r old; do rm -rf -- "$old" && echo "removed $old"; done; true`;
}
