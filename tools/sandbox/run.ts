/**
 * Runs the argv arrays that commands.ts builds, on the local host, without a
 * shell in between. A failure becomes a KraftwerkError with the program's own
 * last lines of output.
 */
import { spawn } from 'node:child_process';
import { KraftwerkError, lastLines, quote } from '../../core/index.ts';

export interface LocalRunOptions {
  /** Each line of output (stdout and stderr), as it arrives. */
  onLine?: (line: string) => void;
  /** When false a non-zero exit is returned, not thrown. Default true. */
  check?: boolean;
  stdin?: string;
  /** Kill the program after this long (every local step is bounded). Default 120 s. */
  timeoutMs?: number;
}

export interface LocalResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function renderArgv(argv: readonly string[]): string {
  return argv.map((a) => quote(a)).join(' ');
}

export function runLocal(argv: readonly string[], options: LocalRunOptions = {}): Promise<LocalResult> {
  const { check = true, timeoutMs = 120_000 } = options;
  const [program, ...args] = argv;
  if (!program) throw new Error('runLocal: empty argv');
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stdout = '';
    let stderr = '';
    let pending = { out: '', err: '' };
    const feed = (which: 'out' | 'err', chunk: string) => {
      if (!options.onLine) return;
      const text = pending[which] + chunk;
      const lines = text.split('\n');
      pending[which] = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) options.onLine(l);
    };
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      feed('out', c);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      feed('err', c);
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${Math.round(timeoutMs / 1000)} s)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      const hint =
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? `Install it (Debian: apt-get install ${packageOf(program)}).`
          : undefined;
      reject(new KraftwerkError(`cannot run ${program}: ${e.message}`, { hint, cause: e }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      for (const which of ['out', 'err'] as const) if (pending[which].trim()) options.onLine?.(pending[which]);
      pending = { out: '', err: '' };
      if (check && code !== 0) {
        const tail = lastLines((stderr.trim() || stdout.trim()), 15);
        reject(
          new KraftwerkError(
            `command failed (exit ${code ?? 'signal'}): ${shorten(renderArgv(argv), 300)}${tail ? `\n${tail}` : ''}`,
          ),
        );
        return;
      }
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.stdin ?? '');
  });
}

function shorten(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const PACKAGE_OF: Record<string, string> = {
  ip: 'iproute2',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  mount: 'mount',
  debootstrap: 'debootstrap',
  'ssh-keygen': 'openssh-client',
  ssh: 'openssh-client',
  tar: 'tar',
  chroot: 'coreutils',
};

/** The Debian package that provides a program the sandbox needs. */
export function packageOf(program: string): string {
  return PACKAGE_OF[program] ?? program;
}
