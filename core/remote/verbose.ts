/**
 * `--verbose`: every effect on a node is a Remote operation, so the connection
 * itself prints each one as it starts: the command as shown to users (Secrets
 * as `***`, then every secret value this process knows masked in the line), the
 * files written (paths only), the rsync. The output of commands is shown by the
 * tasks, as without --verbose. --dry-run has its own Remote and is not wrapped.
 */
import { maskSecrets, type Script } from '../shell/sh.ts';
import { type ExecOptions, type ExecResult, ForwardingRemote, type Remote, type RemoteFile, type RsyncRunOptions, type RsyncSpec, type RsyncStats } from './remote.ts';
import { rsyncCommandLine } from './rsync.ts';
import { syncFilesDisplay } from './syncfiles.ts';

export class VerboseRemote extends ForwardingRemote {
  constructor(
    inner: Remote,
    /** Where the lines go (stderr: stdout may be a command's answer, such as --json). */
    private readonly print: (line: string) => void,
  ) {
    super(inner);
  }

  private show(text: string): void {
    this.print(maskSecrets(`[${this.target.name}] $ ${text}`));
  }

  override exec(cmd: Script, options?: ExecOptions): Promise<ExecResult> {
    this.show(cmd.display);
    return this.inner.exec(cmd, options);
  }

  override syncFiles(files: RemoteFile[]): Promise<string[]> {
    if (files.length) this.show(syncFilesDisplay(files));
    return this.inner.syncFiles(files);
  }

  override rsync(spec: RsyncSpec, options?: RsyncRunOptions): Promise<RsyncStats | undefined> {
    this.show(rsyncCommandLine(this.target, spec));
    return this.inner.rsync(spec, options);
  }
}
