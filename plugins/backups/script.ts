/**
 * The scheduled backup of a site: one script, written at deploy time, that
 * cron runs as root (see the cron plugin). It holds every plugin's `dump`
 * commands (and with `verify: true` their `verify` commands), recorded at
 * deploy time, because cron on the server has no Kraftwerk to run the taps.
 * The dump folders, manifests and rotation are core's (see `kraftwerk backup`).
 */
import {
  type DumpContext,
  type DumpManifest,
  type ExecOptions,
  type ExecResult,
  type Hooks,
  KraftwerkError,
  MANIFEST_FILE,
  prepareDumpDirCommand,
  type Remote,
  type RemoteFile,
  rotateBackupsCommand,
  runInline,
  type Script,
  sh,
  type Site,
  type SshTarget,
  TaskList,
} from '../../core/index.ts';

/** Where the scheduled backup script is written (root only: .kraftwerk is 0700). */
export function backupScriptPath(site: Site): string {
  return `${site.paths.state}/backup.sh`;
}

/**
 * A Remote that runs nothing and records every command, so that the `dump`
 * taps of all plugins can also be written into the scheduled backup script
 * (cron on the server has no Kraftwerk to run them). Dump tasks must therefore
 * be plain commands that do not depend on each other's output.
 */
export class RecordingRemote implements Remote {
  readonly dryRun = false;
  readonly commands: Script[] = [];
  constructor(readonly target: SshTarget) {}
  get commandCount(): number {
    return this.commands.length;
  }
  async exec(cmd: Script, options?: ExecOptions): Promise<ExecResult> {
    if (options?.stdin !== undefined || options?.pty) {
      throw new KraftwerkError('a dump task cannot send input to its command: it must also run from the scheduled backup script');
    }
    this.commands.push(cmd);
    return { code: 0, stdout: '', stderr: '' };
  }
  async syncFiles(_files: RemoteFile[]): Promise<string[]> {
    throw new KraftwerkError('a dump task cannot write files: it must also run from the scheduled backup script');
  }
  async rsync(): Promise<undefined> {
    throw new KraftwerkError('a dump task cannot copy files with rsync: it must also run from the scheduled backup script');
  }
  async close(): Promise<void> {}
}

/** The commands the plugins' dump (or verify) taps run for a dump in `dir` (recorded, not run). */
export async function recordDumpCommands(
  hooks: Hooks,
  base: Omit<DumpContext, 'remote' | 'dir' | 'id'>,
  dir: string,
  hook: 'dump' | 'verify' = 'dump',
  /** Record only the tasks of these plugins (verify: the parts the backup has). */
  only?: readonly string[],
): Promise<{ commands: Script[]; plugins: string[] }> {
  const remote = new RecordingRemote({ name: base.node, host: base.node, port: 22, user: 'root', identityFiles: [], knownHostsFiles: [] });
  const ctx: DumpContext = { ...base, remote, dir, id: 'scheduled' };
  const tasks = new TaskList<DumpContext>(hook);
  await hooks[hook].promise(ctx, tasks);
  const ran = await runInline(tasks.sorted().filter((t) => !only || only.includes(t.plugin)), ctx);
  return { commands: remote.commands, plugins: [...new Set(ran.map((t) => t.plugin!))] };
}

/**
 * The scheduled backup, as one script cron runs as root: the plugins' dump
 * commands into a scratch folder, with `backups: {verify: true}` the plugins'
 * verify commands on it, the manifest, the rename to a timestamped folder,
 * then rotation. A backup that fails its check stops the script there: it is
 * not renamed (it stays in .scheduled until the next run) and rotates no good
 * backup out. `flock -n` keeps two runs from overlapping.
 */
export function renderBackupScript(
  site: Site,
  dumpCommands: readonly Script[],
  plugins: readonly string[],
  keep: number,
  verifyCommands: readonly Script[] = [],
): string {
  const scratch = `${site.paths.backups}/.scheduled`;
  const manifest: DumpManifest = { kind: 'backup', site: site.name, plugins: [...plugins], by: 'cron' };
  const subshells = (commands: readonly Script[]) => commands.map((c) => `(\n${c.text}\n)`).join('\n');
  const verify = verifyCommands.length
    ? `${verifyCommands.map((c) => `(\n${c.text}\n)`).join(' &&\n')} || { echo "backup $id FAILED its check (kraftwerk backup verify): not kept" >&2; exit 1; }\necho "backup $id verified"\n`
    : '';
  return `#!/bin/sh
# Kraftwerk: scheduled backup of site ${site.name} (backups: in kraftwerk.yaml). Written by \`kraftwerk deploy\`.
set -eu
umask 077
id=$(date -u +%Y%m%dT%H%M%SZ)
${prepareDumpDirCommand(scratch).text}
${subshells(dumpCommands)}
${verify}${sh`printf '%s\\n' ${JSON.stringify(manifest)} > ${`${scratch}/${MANIFEST_FILE}`} && mv -T ${scratch} ${site.paths.backups}/"$id"`.text}
${rotateBackupsCommand(site, keep).text}
echo "backup $id done"
`;
}
