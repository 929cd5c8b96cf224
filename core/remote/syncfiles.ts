/**
 * Writing many files on a server in one round trip. The contents travel on the
 * command's stdin (one byte-exact blob, never through shell quoting); the command
 * cuts its file out of the blob, compares it with what is there and replaces the
 * file only when content, mode or owner differ, printing each path it changed.
 * Files marked `remove` are deleted when they are there (and printed as changed).
 */
import { createHash } from 'node:crypto';
import { quote, raw, sh, type Script } from '../shell/sh.ts';
import type { Remote, RemoteFile } from './remote.ts';

/** Files get this mode unless the plugin asks for another. */
export const DEFAULT_FILE_MODE = 0o644;

export interface SyncFilesCommand {
  command: Script;
  /** Everything the command reads from stdin: the contents of all files, concatenated. */
  stdin: Buffer;
}

// kw_state: one sha256sum and one stat for all files that exist (not one cmp and
// stat per file: a deploy writes a dozen files and most are unchanged), read back
// in order by kw_put, one line per file that exists.
// kw_put: $1 path, $2 offset of the content in the blob (1-based, for `tail -c +N`),
// $3 length, $4 octal mode, $5 owner, $6 group (empty: leave as it is), $7 sha256 of the content.
// The new file is written next to the old one and renamed over it, so readers
// (nginx, uWSGI) see either the old or the new file, never half of one.
const SCRIPT = `set -e
umask 022
kw_tmp=$(mktemp -d)
kw_new=
trap 'rm -rf "$kw_tmp"; [ -z "$kw_new" ] || rm -f "$kw_new"' EXIT
cat > "$kw_tmp/in"
kw_state() {
  : > "$kw_tmp/list"
  for kw_f in "$@"; do if [ -f "$kw_f" ]; then printf '%s\\0' "$kw_f" >> "$kw_tmp/list"; fi; done
  : > "$kw_tmp/sums"; : > "$kw_tmp/stats"
  if [ -s "$kw_tmp/list" ]; then
    xargs -0 sha256sum -- < "$kw_tmp/list" | sed 's/^\\\\//' | cut -c1-64 > "$kw_tmp/sums"
    xargs -0 stat -c '%a %U %G' -- < "$kw_tmp/list" > "$kw_tmp/stats"
  fi
  exec 3< "$kw_tmp/sums" 4< "$kw_tmp/stats"
}
kw_put() {
  if [ -d "$1" ]; then echo "kraftwerk: $1 is a directory, not a file" >&2; exit 1; fi
  kw_sum=; kw_mode=; kw_owner=; kw_group=
  if [ -f "$1" ]; then read -r kw_sum <&3; read -r kw_mode kw_owner kw_group <&4; fi
  if [ -n "$kw_sum" ] && [ "$kw_sum" = "$7" ]; then
    kw_changed=
    [ "$kw_mode" = "$4" ] || { chmod "$4" "$1"; kw_changed=1; }
    [ -z "$5" ] || [ "$kw_owner" = "$5" ] || { chown "$5" "$1"; kw_changed=1; }
    [ -z "$6" ] || [ "$kw_group" = "$6" ] || { chgrp "$6" "$1"; kw_changed=1; }
    [ -z "$kw_changed" ] || printf '%s\\n' "$1"
  else
    mkdir -p "$(dirname "$1")"
    kw_new=$(mktemp "$(dirname "$1")/.kraftwerk-new.XXXXXX")
    tail -c +"$2" "$kw_tmp/in" | head -c "$3" > "$kw_new"
    chmod "$4" "$kw_new"
    [ -z "$5" ] || chown "$5" "$kw_new"
    [ -z "$6" ] || chgrp "$6" "$kw_new"
    mv -f "$kw_new" "$1"
    kw_new=
    printf '%s\\n' "$1"
  fi
}
kw_rm() {
  if [ -d "$1" ] && [ ! -L "$1" ]; then echo "kraftwerk: $1 is a directory, not a file" >&2; exit 1; fi
  if [ -e "$1" ] || [ -L "$1" ]; then rm -f "$1"; printf '%s\\n' "$1"; fi
}`;

export function buildSyncFilesCommand(input: readonly RemoteFile[]): SyncFilesCommand {
  // One entry per path, the last one wins (kw_state reads each file's state once, before any is written).
  const files = [...new Map(input.map((f) => [f.path, f])).values()];
  const contents: Buffer[] = [];
  const calls: Script[] = [];
  let offset = 1;
  for (const file of files) {
    // The script reports changed paths one per line, and writes only absolute paths.
    if (!file.path.startsWith('/') || file.path.endsWith('/') || file.path.includes('\n')) {
      throw new Error(`cannot write ${JSON.stringify(file.path)}: a file path must be absolute, without a newline or trailing /`);
    }
    if (file.remove) {
      calls.push(sh`kw_rm ${file.path}`);
      continue;
    }
    const content = Buffer.from(file.content, 'utf8');
    const mode = (file.mode ?? DEFAULT_FILE_MODE).toString(8);
    const sum = createHash('sha256').update(content).digest('hex');
    calls.push(sh`kw_put ${file.path} ${offset} ${content.length} ${mode} ${file.owner ?? ''} ${file.group ?? ''} ${sum}`);
    contents.push(content);
    offset += content.length;
  }
  const state = sh`kw_state ${files.filter((f) => !f.remove).map((f) => f.path)}`;
  const text = [SCRIPT, state.text, ...calls.map((c) => c.text)].join('\n');
  return { command: { ...raw(text), display: syncFilesDisplay(files) }, stdin: Buffer.concat(contents) };
}

/** Error messages and --verbose show which files are written, not the whole script (nor the contents). */
export function syncFilesDisplay(files: readonly RemoteFile[]): string {
  const written = files.filter((f) => !f.remove).map((f) => quote(f.path));
  const removed = files.filter((f) => f.remove).map((f) => quote(f.path));
  return [written.length ? `write files: ${written.join(' ')}` : '', removed.length ? `remove if present: ${removed.join(' ')}` : '']
    .filter(Boolean)
    .join('; ');
}

/** The paths the command printed as changed. */
export function parseSyncFilesOutput(stdout: string): string[] {
  return stdout.split('\n').filter((line) => line !== '');
}

/**
 * Write `files` through the context's connection (one round trip) and record
 * the paths that changed in its file set's `changed`, which later tasks read
 * (a changed nginx file means a reload). `unrecorded` is written but is no
 * configuration of the site (the saved copy of the set kept for rollback).
 * Returns the recorded paths.
 */
export async function syncAndRecord(
  ctx: { remote: Remote; files: { changed: Set<string> } },
  files: RemoteFile[],
  options: { unrecorded?: string } = {},
): Promise<string[]> {
  const changed = (await ctx.remote.syncFiles(files)).filter((p) => p !== options.unrecorded);
  for (const p of changed) ctx.files.changed.add(p);
  return changed;
}
