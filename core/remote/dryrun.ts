/**
 * `--dry-run`: a Remote that shows what would run and what would be written
 * (contents of private files excepted), and does nothing else: it never connects.
 */
import type { Script } from '../shell/sh.ts';
import type { ExecResult, Remote, RemoteFile, RsyncRunOptions, RsyncSpec, SshTarget } from './remote.ts';
import { rsyncCommandLine } from './rsync.ts';
import { DEFAULT_FILE_MODE } from './syncfiles.ts';

export class DryRunRemote implements Remote {
  readonly dryRun = true;
  private count = 0;

  constructor(
    readonly target: SshTarget,
    private readonly print: (line: string) => void,
  ) {}

  get commandCount(): number {
    return this.count;
  }

  async exec(cmd: Script): Promise<ExecResult> {
    this.count++;
    this.print(`[${this.target.name}] $ ${cmd.display}`);
    return { code: 0, stdout: '', stderr: '' };
  }

  /** Prints every file; all of them count as changed, so the reloads they trigger are shown too. */
  async syncFiles(files: RemoteFile[]): Promise<string[]> {
    if (files.length > 0) this.count++;
    for (const file of files) {
      if (file.remove) {
        this.print(`[${this.target.name}] remove ${file.path} (if it is there)`);
        continue;
      }
      const owner = file.owner || file.group ? `, owner ${file.owner ?? ''}${file.group ? `:${file.group}` : ''}` : '';
      const mode = (file.mode ?? DEFAULT_FILE_MODE).toString(8).padStart(4, '0');
      this.print(`[${this.target.name}] write ${file.path} (mode ${mode}${owner})`);
      // A file others may not read (the site's env, keys) holds secrets: dry-run output ends up in CI logs.
      if (((file.mode ?? DEFAULT_FILE_MODE) & 0o004) === 0) {
        this.print(`  │ (${Buffer.byteLength(file.content)} bytes, not shown: the file is not world-readable)`);
        continue;
      }
      const lines = file.content.split('\n');
      if (lines.at(-1) === '') lines.pop();
      for (const line of lines) this.print(`  │ ${line}`);
      if (file.content !== '' && !file.content.endsWith('\n')) this.print('  │ (no newline at end of file)');
    }
    return files.map((f) => f.path);
  }

  /** Shows the rsync command, as the task's output and as a line of its own, and copies nothing. */
  async rsync(spec: RsyncSpec, options: RsyncRunOptions = {}): Promise<undefined> {
    const command = rsyncCommandLine(this.target, spec);
    options.onLine?.(command);
    this.print(`[dry-run] ${this.target.name}: ${command}`);
    return undefined;
  }

  async close(): Promise<void> {}
}
