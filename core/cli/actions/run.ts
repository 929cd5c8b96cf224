/**
 * `kraftwerk run [node] -- <command…>` (the original's `stab`): a command in
 * the live release, as the site's user, with the site's environment and venv,
 * its exit code passed through. `-i` gives it a terminal (a Django shell);
 * `-i` without a command opens a shell.
 */
import { UsageError } from '../../errors.ts';
import type { CoreKit } from '../kit.ts';
import { type Script, quote, raw, sh } from '../../shell/sh.ts';
import { currentVenv, inSiteEnv } from '../../shell/site-shell.ts';
import type { Site } from '../../config/site.ts';
import { connect, nodeWithRole, requireDeployed } from './ops.ts';

/**
 * The command line to run. One word is taken as shell text (`run -- 'manage.py
 * dumpdata > x.json'`); several words are quoted one by one, as typed.
 */
export function commandLine(words: readonly string[]): string {
  if (words.length === 1) return words[0]!;
  return words.map((w) => quote(w)).join(' ');
}

export function siteRunCommand(site: Site, words: readonly string[]): Script {
  const command = words.length ? raw(commandLine(words)) : sh`if command -v bash >/dev/null; then exec bash; else exec sh; fi`;
  return inSiteEnv(site, { dir: site.paths.current, venv: currentVenv(site), command });
}

/**
 * Split the words after `run` at `--`: before it at most the node, after it
 * the command. Without `--`, the first word is the node only when more follow
 * and it is a configured node.
 */
export function splitRunArgs(rawAfterRun: readonly string[], nodes: readonly string[]): { node?: string; words: string[] } {
  const dash = rawAfterRun.indexOf('--');
  if (dash >= 0) {
    const before = rawAfterRun.slice(0, dash).filter((w) => !w.startsWith('-'));
    if (before.length > 1) throw new UsageError(`give at most one node before --, not ${before.join(' ')}`);
    return { node: before[0], words: rawAfterRun.slice(dash + 1) };
  }
  const words = rawAfterRun.filter((w) => !/^-(i|-interactive)$/.test(w));
  if (words.length > 1 && nodes.includes(words[0]!)) return { node: words[0], words: words.slice(1) };
  return { words };
}

/** Exit code of the remote command as a process exit code (a signal gives 128 + its number, as shells do). */
export function exitCodeOf(code: number | null, signal?: string): number {
  if (code !== null) return code;
  const numbers: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, TERM: 15, PIPE: 13 };
  return 128 + (signal ? (numbers[signal.replace(/^SIG/, '')] ?? 1) : 1);
}

export async function runCommand(kit: CoreKit, nodeArg: string | undefined, words: string[], options: { interactive?: boolean }): Promise<number> {
  const project = await kit.loadProject();
  const { site } = project;
  if (!words.length && !options.interactive) {
    throw new UsageError('no command given', { hint: 'kraftwerk run [node] -- python manage.py migrate --check   (or -i for a shell)' });
  }
  // In a group split by role: the first web node, where the app's code and environment are.
  const node = await nodeWithRole(kit, project, nodeArg, 'run', 'web');
  const remote = await connect(kit, project, node);
  await requireDeployed(remote, site, node);
  const interactive = Boolean(options.interactive && process.stdin.isTTY);
  // -i without a terminal: the command reads what is piped in (`kraftwerk run -i -- psql < x.sql`).
  const stdin = options.interactive && !interactive ? await readAll(process.stdin) : undefined;
  const result = await remote.exec(siteRunCommand(site, words), {
    check: false,
    pty: interactive,
    stdin,
    onStdout: (chunk) => process.stdout.write(chunk),
    onStderr: (chunk) => process.stderr.write(chunk),
  });
  return exitCodeOf(result.code, result.signal);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}
