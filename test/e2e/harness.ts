/**
 * Helpers for end-to-end tests: real sandboxes made through the same library
 * as `kraftwerk sandbox`, the real CLI, and teardown that always runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  hasSnapshot,
  rootfsTarball,
  sandboxDown,
  sandboxUp,
  saveSnapshot,
  snapshotPath,
  type SandboxInfo,
  type SandboxUpOptions,
} from '../../tools/sandbox/lib.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(REPO_ROOT, 'bin', 'kraftwerk.js');

function onPath(program: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((dir) => {
    try {
      accessSync(path.join(dir, program));
      return true;
    } catch {
      return false;
    }
  });
}

let cachedCheck: { ok: boolean; reason?: string } | undefined;

/**
 * Whether this machine can make sandboxes: Linux, root, the programs, and
 * namespaces that can really be created. Tests call `t.skip(reason)` when not.
 */
export function canMakeSandboxes(): { ok: boolean; reason?: string } {
  cachedCheck ??= checkSandboxSupport();
  return cachedCheck;
}

function checkSandboxSupport(): { ok: boolean; reason?: string } {
  if (process.platform !== 'linux') return { ok: false, reason: `sandboxes need Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'sandboxes need root (run the e2e suite as root)' };
  const programs = ['ip', 'unshare', 'chroot', 'mount', 'tar', 'ssh', 'ssh-keygen'];
  if (!existsSync(rootfsTarball())) programs.push('debootstrap');
  const missing = programs.filter((p) => !onPath(p));
  if (missing.length) return { ok: false, reason: `sandboxes need ${missing.join(', ')} (apt-get install debootstrap iproute2 openssh-client)` };
  const ns = spawnSync('unshare', ['--net', '--pid', '--mount', '--uts', '--fork', 'true'], { encoding: 'utf8', timeout: 10_000 });
  if (ns.status !== 0) return { ok: false, reason: `cannot create namespaces here: ${(ns.stderr || ns.error?.message || '').trim()}` };
  return { ok: true };
}

/** The skip option for a describe/it: the reason when sandboxes cannot be made, else false. */
export function sandboxSkip(): string | false {
  const c = canMakeSandboxes();
  return c.ok ? false : (c.reason ?? 'sandboxes cannot be made here');
}

/** Sandboxes this test process made and has not removed yet (removed on SIGINT/SIGTERM as well). */
const live = new Set<string>();
let signalsHooked = false;

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void Promise.allSettled([...live].map((n) => sandboxDown(n))).finally(() => process.exit(130));
    });
  }
}

/** Remove a sandbox this process made; safe to call twice. */
export async function removeSandbox(name: string): Promise<void> {
  await sandboxDown(name);
  live.delete(name);
}

/**
 * Bring sandbox `name` up (fresh: an earlier one of that name is replaced),
 * run `fn`, and tear it down afterwards: on success, failure and timeout
 * (the test's after hook), and on SIGINT/SIGTERM.
 */
export async function withSandbox<T>(
  t: TestContext,
  name: string,
  fn: (sandbox: SandboxInfo) => Promise<T>,
  options: Omit<SandboxUpOptions, 'onProgress'> = {},
): Promise<T> {
  hookSignals();
  t.after(() => removeSandbox(name));
  live.add(name);
  await sandboxDown(name);
  const sandbox = await sandboxUp(name, { ...options, onProgress: progressTo(t) });
  try {
    return await fn(sandbox);
  } finally {
    await removeSandbox(name);
  }
}

export interface SnapshotRecipe {
  /** Names the snapshot; the caller derives it from a hash of the setup steps, so it changes when they do. */
  key: string;
  /** Makes a fresh sandbox into what the snapshot holds (e.g. runs `kraftwerk setup-node <name>`). */
  prepare: (sandbox: SandboxInfo) => Promise<void>;
}

/**
 * Make snapshot `recipe.key` unless it exists: a fresh sandbox, `prepare`,
 * then save. Test files running at the same time wait for one build.
 */
export async function ensureSnapshot(t: TestContext, recipe: SnapshotRecipe): Promise<void> {
  const { createHash } = await import('node:crypto');
  const { mkdir } = await import('node:fs/promises');
  const { withLock } = await import('../../tools/sandbox/state.ts');
  const { SNAPSHOT_DIR } = await import('../../tools/sandbox/commands.ts');
  if (await hasSnapshot(recipe.key)) return;
  await mkdir(SNAPSHOT_DIR, { recursive: true });
  await withLock(`${snapshotPath(recipe.key)}.lock`, 45 * 60_000, async () => {
    if (await hasSnapshot(recipe.key)) return;
    const builder = `snap-${createHash('sha256').update(recipe.key).digest('hex').slice(0, 8)}`;
    t.diagnostic(`making snapshot ${recipe.key} in sandbox ${builder}`);
    await withSandbox(t, builder, async (sandbox) => {
      await recipe.prepare(sandbox);
      await saveSnapshot(builder, recipe.key, progressTo(t));
    });
  });
}

/**
 * Like withSandbox, but the sandbox starts from the snapshot of `recipe`
 * (made first when missing): for tests that need a set-up node but are not
 * about setting one up.
 */
export async function withPreparedSandbox<T>(
  t: TestContext,
  name: string,
  recipe: SnapshotRecipe,
  fn: (sandbox: SandboxInfo) => Promise<T>,
): Promise<T> {
  await ensureSnapshot(t, recipe);
  return withSandbox(t, name, fn, { fromSnapshot: recipe.key });
}

/** Step lines go to the test's diagnostics; debootstrap's per-package lines would drown them. */
export function progressTo(t: TestContext): (line: string) => void {
  return (line) => {
    if (!/^I: (Retrieving|Validating|Extracting|Unpacking|Configuring|Installing|Resolving|Checking|Found)/.test(line)) {
      t.diagnostic(line);
    }
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run the real CLI (`node bin/kraftwerk.js …`, built into dist/ by `npm run
 * build`). Bounded by `timeoutMs` (default 10 minutes).
 */
export function runCli(
  args: readonly string[],
  /** `input`: written to the CLI's stdin, then closed (a secret as `env set NAME` reads it); else no stdin. */
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; user?: string; input?: string } = {},
): Promise<CliResult> {
  if (!existsSync(path.join(REPO_ROOT, 'dist', 'core', 'cli', 'main.js'))) {
    throw new Error('the CLI is not built (dist/core/cli/main.js is missing): run npm run build first');
  }
  const argv = [process.execPath, CLI, ...args];
  // runuser switches user without PAM or a password (tests of "needs root" run the CLI as nobody).
  const [program, ...rest] = options.user ? ['runuser', '-u', options.user, '--', ...argv] : argv;
  return new Promise((resolve, reject) => {
    const child = spawn(program!, rest, {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (options.input !== undefined) {
      // A CLI that exits before reading its input closes the pipe: that is its answer, not the test's failure.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(options.input);
    }
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timeoutMs = options.timeoutMs ?? 10 * 60_000;
    const timer = setTimeout(() => {
      stderr += `\n(runCli: killed after ${timeoutMs / 1000} s)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Everything of sandbox `name` still on this machine: network namespace,
 * veth, mounts, processes, folders. Empty when it is really gone.
 */
export async function sandboxLeftovers(name: string): Promise<string[]> {
  const { sandboxNetNames } = await import('../../tools/sandbox/naming.ts');
  const { SANDBOX_ROOTS_DIR } = await import('../../tools/sandbox/commands.ts');
  const { sandboxStateDir } = await import('../../tools/sandbox/state.ts');
  const { readFileSync, readdirSync, readlinkSync } = await import('node:fs');
  const net = sandboxNetNames(name);
  const dir = path.join(SANDBOX_ROOTS_DIR, name);
  const found: string[] = [];
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  if (netns.split('\n').some((l) => l.split(' ')[0] === net.netns)) found.push(`network namespace ${net.netns}`);
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  for (const veth of [net.vethHost, net.vethSandbox]) if (links.includes(`${veth}@`) || links.includes(`${veth}:`)) found.push(`interface ${veth}`);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mountPoint = line.split(' ')[4] ?? '';
    if (mountPoint.startsWith(dir) || mountPoint === `/run/netns/${net.netns}`) found.push(`mount ${mountPoint}`);
  }
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let root = '';
    let cmdline = '';
    try {
      root = readlinkSync(`/proc/${pid}/root`);
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // exited meanwhile
    }
    if (root.startsWith(dir) || cmdline.includes(`${dir}/`)) found.push(`process ${pid} (${cmdline.trim().slice(0, 80)})`);
  }
  if (existsSync(dir)) found.push(`folder ${dir}`);
  if (existsSync(sandboxStateDir(name))) found.push(`folder ${sandboxStateDir(name)}`);
  return found;
}
