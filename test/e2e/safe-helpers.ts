/**
 * Shared pieces of the safe-deploy end-to-end tests (test/e2e/safe-*.test.ts):
 * a temporary project made from the fixture app, set-up sandbox nodes (from a
 * snapshot taken after setup-node, so only the first run pays for apt), HTTP
 * from this machine with the site's Host header, a poller that records every
 * answer while a deploy runs, and the CLI run in the background so a test can
 * kill it when it reaches a phase.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { parseDocument } from 'yaml';
import { quote } from '../../core/shell.ts';
import { SNAPSHOT_DIR } from '../../plugins/sandbox/commands.ts';
import { removeSnapshot, rootfsTarball, type SandboxInfo } from '../../plugins/sandbox/lib.ts';
import { REPO_ROOT, runCli, withPreparedSandbox, type CliResult, type SnapshotRecipe } from './harness.ts';

export const SAFE_FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'apps', 'safe-site');
/** `package:` and `domain:` of the fixture. */
export const SITE = 'safesite';
export const DOMAIN = 'safe-site.test';
/** Files the fixture app reads on the node (see its app.py). */
export const UNHEALTHY_FLAG = '/etc/safesite-unhealthy-version';
export const UNLOADABLE_FLAG = '/etc/safesite-unloadable-version';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The page `/` of the fixture when `version` is live with its own config. */
export function pageOf(version: string): string {
  return `safe-site version ${version}, greeting hello-${version}\n`;
}

/** The name the broken app.py fails to import; its ImportError names it. */
export const MISSING_NAME = 'kraftwerk_no_such_name';

/**
 * A temporary copy of the fixture project, changed in place between deploys:
 * each version has its own page, its own config (environ) and its own
 * requirements (a comment, so each version gets its own venv and the install
 * phase really builds one).
 */
export class SafeProject {
  private constructor(readonly dir: string) {}

  static create(t: TestContext): SafeProject {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-safe-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(SAFE_FIXTURE, dir, { recursive: true });
    return new SafeProject(dir);
  }

  private readonly file = (name: string) => path.join(this.dir, name);

  private editConfig(edit: (doc: ReturnType<typeof parseDocument>) => void): void {
    const doc = parseDocument(readFileSync(this.file('kraftwerk.yaml'), 'utf8'));
    edit(doc);
    writeFileSync(this.file('kraftwerk.yaml'), doc.toString());
  }

  /** Make the project version `version`: page, environ and requirements, with the fixture's working app.py. */
  setVersion(version: string): this {
    writeFileSync(this.file('version.txt'), `${version}\n`);
    cpSync(path.join(SAFE_FIXTURE, 'app.py'), this.file('app.py'));
    writeFileSync(this.file('requirements.txt'), `${readFileSync(path.join(SAFE_FIXTURE, 'requirements.txt'), 'utf8')}# version ${version}\n`);
    this.editConfig((doc) => doc.setIn(['environ', 'SAFE_GREETING'], `hello-${version}`));
    return this;
  }

  /** Version `version` whose WSGI module fails with an ImportError when uWSGI loads it. */
  setBrokenVersion(version: string): this {
    this.setVersion(version);
    const app = readFileSync(this.file('app.py'), 'utf8');
    writeFileSync(this.file('app.py'), `from os import ${MISSING_NAME}  # the broken release: an import error\n${app}`);
    return this;
  }

  /** `nodes:` of kraftwerk.yaml. */
  setNodes(nodes: Record<string, string | string[]>): this {
    this.editConfig((doc) => doc.set('nodes', nodes));
    return this;
  }

  /** `release:` commands of kraftwerk.yaml. */
  setReleaseCommands(commands: string[]): this {
    this.editConfig((doc) => doc.set('release', commands));
    return this;
  }

  /** A file of random (incompressible) bytes, so that rsync takes a while. */
  addBlob(megabytes: number): this {
    writeFileSync(this.file('blob.bin'), randomBytes(megabytes * 1024 * 1024));
    return this;
  }

  /** The CLI in this project's folder. */
  cli(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<CliResult> {
    return runCli(args, { cwd: this.dir, ...options });
  }

  spawn(args: readonly string[]): RunningCli {
    return spawnCli(args, this.dir);
  }
}

// ---------------------------------------------------------------- set-up nodes

/** Files whose content decides what setup-node does: a change makes a new snapshot. */
function setupInputs(): string[] {
  const files = ['core/commands/setup-node.ts', 'core/probe.ts', 'core/registry.ts', 'core/context.ts'].map((f) => path.join(REPO_ROOT, f));
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir).sort()) {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else files.push(full);
    }
  };
  for (const plugin of ['python', 'uwsgi', 'runit', 'nginx', 'postgres', 'redis', 'cron']) walk(path.join(REPO_ROOT, 'plugins', plugin));
  return files;
}

const SNAPSHOT_PREFIX = 'safe-setup-';

/** Snapshot key of a sandbox after setup-node: the root file system and the setup code it ran. */
export function setupSnapshotKey(): string {
  const hash = createHash('sha256').update(path.basename(rootfsTarball()));
  for (const file of setupInputs()) hash.update(path.relative(REPO_ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  return `${SNAPSHOT_PREFIX}${hash.digest('hex').slice(0, 16)}`;
}

/** A node with the stack set up (`kraftwerk setup-node` outside any project: no site's packages). */
export function setupRecipe(): SnapshotRecipe {
  const key = setupSnapshotKey();
  return {
    key,
    prepare: async (sandbox) => {
      const r = await runCli(['setup-node', sandbox.name], { cwd: tmpdir(), timeoutMs: 30 * 60_000 });
      assert.equal(r.code, 0, `kraftwerk setup-node ${sandbox.name} failed:\n${r.stdout}\n${r.stderr}`);
      // Snapshots of older setup code are dead weight (hundreds of MB each). Those younger than
      // a day may belong to another checkout (a worktree) running its tests now: they stay.
      for (const name of await readdir(SNAPSHOT_DIR).catch(() => [] as string[])) {
        const other = name.replace(/\.tar$/, '');
        if (!name.startsWith(SNAPSHOT_PREFIX) || !name.endsWith('.tar') || other === key) continue;
        const age = Date.now() - (await stat(path.join(SNAPSHOT_DIR, name)).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
        if (age > 24 * 3_600_000) await removeSnapshot(other);
      }
    },
  };
}

/**
 * Sandboxes `names`, started from the set-up snapshot (made first when
 * missing) and set up again for the project (quick: it starts nginx,
 * PostgreSQL and Redis, as after a reboot), for the duration of `fn`; all of
 * them are removed afterwards, also on failure and signals.
 */
export async function withSetUpNodes<T>(
  t: TestContext,
  project: SafeProject,
  names: readonly string[],
  fn: (nodes: SandboxInfo[]) => Promise<T>,
): Promise<T> {
  const recipe = setupRecipe();
  const up = async (rest: readonly string[], made: SandboxInfo[]): Promise<T> => {
    if (!rest.length) return fn(made);
    const [name, ...others] = rest as [string, ...string[]];
    return withPreparedSandbox(t, name, recipe, async (sandbox) => {
      const r = await project.cli(['setup-node', name], { timeoutMs: 30 * 60_000 });
      assert.equal(r.code, 0, `kraftwerk setup-node ${name} failed:\n${r.stdout}\n${r.stderr}`);
      return up(others, [...made, sandbox]);
    });
  };
  return up(names, []);
}

/** A shell script run as root on a sandbox (through `kraftwerk sandbox ssh`); its output, or a failed assertion. */
export async function onNode(name: string, script: string): Promise<string> {
  const r = await runCli(['sandbox', 'ssh', name, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `on ${name}: ${script}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

// ---------------------------------------------------------------- HTTP

export interface Answer {
  /** ms since the epoch, when the request was sent. */
  at: number;
  status?: number;
  body?: string;
  /** Connection error or timeout. */
  error?: string;
}

/** GET `urlPath` from the node's nginx at `address` with the site's Host header, as a browser would. */
export function get(address: string, urlPath = '/', timeoutMs = 5000): Promise<Answer> {
  const at = Date.now();
  return new Promise((resolve) => {
    const req = request({ host: address, port: 80, path: urlPath, headers: { Host: DOMAIN }, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ at, status: res.statusCode, body }));
      res.on('error', (e) => resolve({ at, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ at, error: e.message }));
    req.end();
  });
}

export function describeAnswer(a: Answer): string {
  const when = new Date(a.at).toISOString().slice(11, 23);
  return a.error ? `${when} error: ${a.error}` : `${when} ${a.status} ${JSON.stringify(a.body?.slice(0, 120))}`;
}

/** What `/` serves now; fails the test on an error or a status other than 200. */
export async function servedPage(address: string): Promise<string> {
  const a = await get(address);
  assert.equal(a.status, 200, `GET / on ${address} (Host: ${DOMAIN}): ${describeAnswer(a)}`);
  return a.body!;
}

export interface Poller {
  /** Stop and return every answer, in order. */
  stop(): Promise<Answer[]>;
}

/**
 * Request `/` again and again (one connection each, `intervalMs` apart) until
 * stopped, at most `maxMs` long.
 */
export function poll(address: string, options: { intervalMs?: number; maxMs?: number } = {}): Poller {
  const interval = options.intervalMs ?? 100;
  const deadline = Date.now() + (options.maxMs ?? 15 * 60_000);
  const answers: Answer[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped && Date.now() < deadline) {
      answers.push(await get(address));
      await sleep(interval);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return answers;
    },
  };
}

/**
 * Every answer is a 200 with one of the `pages`; at least `min` answers (so a
 * poller that never ran cannot pass).
 */
export function assertOnlyServed(answers: Answer[], pages: string[], what: string, min = 5): void {
  assert.ok(answers.length >= min, `${what}: only ${answers.length} requests were made (expected at least ${min})`);
  const bad = answers.filter((a) => a.status !== 200 || !pages.includes(a.body ?? ''));
  assert.equal(
    bad.length,
    0,
    `${what}: ${bad.length} of ${answers.length} requests did not get ${pages.map((p) => JSON.stringify(p)).join(' or ')}; ` +
      `first ones:\n  ${bad.slice(0, 8).map(describeAnswer).join('\n  ')}`,
  );
}

// ---------------------------------------------------------------- the CLI, releases

/**
 * The id of the release a deploy made, from its output: the closing line
 * ("Deployed safesite release <id> to …"), or for a deploy that did not get
 * there, the rsync line ("rsync project → releases/<id>"). Other lines name
 * other releases (the live one, a roll back target).
 */
export function releaseIdIn(output: string): string | undefined {
  return (/^Deployed \S+ release (\d{8}T\d{6}Z)\b/m.exec(output) ?? /rsync project → releases\/(\d{8}T\d{6}Z)\b/.exec(output))?.[1];
}

export interface ReleaseRow {
  id: string;
  status: string;
}

/** `kraftwerk releases <node> --json` of one node. */
export async function releasesOn(project: SafeProject, node: string): Promise<ReleaseRow[]> {
  const r = await project.cli(['releases', node, '--json']);
  assert.equal(r.code, 0, `kraftwerk releases ${node} failed:\n${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as ReleaseRow[];
}

export function liveRelease(rows: ReleaseRow[]): string | undefined {
  return rows.find((r) => r.status === 'live')?.id;
}

export interface RunningCli {
  pid: number;
  /** stdout and stderr so far, interleaved as they came. */
  output(): string;
  /** Resolves when the output matches `pattern`; fails after `timeoutMs` or when the CLI exits first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<void>;
  /** SIGKILL the CLI and everything it started (rsync, ssh): its whole process group. */
  killHard(): void;
  /** True until the CLI has exited. */
  running(): boolean;
  done: Promise<CliResult>;
}

/** The real CLI in the background, in its own process group, output collected (bounded: 20 minutes). */
export function spawnCli(args: readonly string[], cwd: string): RunningCli {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'kraftwerk.js'), ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let all = '';
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const changed = () => listeners.forEach((l) => l());
  child.stdout!.setEncoding('utf8').on('data', (c: string) => ((stdout += c), (all += c), changed()));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => ((stderr += c), (all += c), changed()));
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const limit = setTimeout(killGroup, 20 * 60_000);
  let exited = false;
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(limit);
      exited = true;
      changed();
      resolve({ code, stdout, stderr });
    });
  });
  return {
    pid: child.pid!,
    output: () => all,
    done,
    killHard: killGroup,
    running: () => !exited,
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(all)) finish(resolve);
          else if (exited) finish(() => reject(new Error(`the CLI exited before its output matched ${pattern}:\n${all}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`the output did not match ${pattern} within ${timeoutMs / 1000} s:\n${all}`))),
          timeoutMs,
        );
        const finish = (then: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          then();
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** Everything a CLI run printed, for assertion messages. */
export function printed(r: CliResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** A deploy that must pass: returns its release id. */
export async function deployOk(project: SafeProject, node: string, extra: string[] = []): Promise<string> {
  const r = await project.cli(['deploy', node, ...extra]);
  assert.equal(r.code, 0, `kraftwerk deploy ${node} failed:\n${printed(r)}`);
  const id = releaseIdIn(r.stdout);
  assert.ok(id, `the deploy output names its release:\n${printed(r)}`);
  return id;
}

/** The first 200 page `/` serves within `timeoutMs` (e.g. while a service starts). */
export async function waitForPage(address: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: Answer | undefined;
  while (Date.now() < deadline) {
    last = await get(address);
    if (last.status === 200) return last.body!;
    await sleep(250);
  }
  assert.fail(`GET / on ${address} (Host: ${DOMAIN}) gave no 200 within ${timeoutMs / 1000} s; last: ${last ? describeAnswer(last) : 'none'}`);
}

/**
 * Restart the site's services and reload nginx, as a reboot would: what then
 * serves is what the files on the node say, not what happened to be loaded.
 */
export async function restartSite(node: string): Promise<void> {
  await onNode(
    node,
    `set -e
# A reboot starts the services without a down file (the spare web slot has one).
for s in /etc/service/kraftwerk-${SITE}@* /etc/service/kraftwerk-${SITE}-*; do
  [ -e "$s" ] || continue
  if [ -e "$s/down" ]; then sv -w 30 down "$s" >/dev/null; else sv -w 30 restart "$s" >/dev/null; fi
done
service nginx reload >/dev/null`,
  );
}

/** Wait until the deploy lock of the site exists on `node` (a deploy holds it). */
export async function waitForLock(node: string, lockDir: string, isRunning: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    assert.ok(isRunning(), 'the first deploy ended before its lock was seen');
    if ((await onNode(node, `if [ -d ${quote(lockDir)} ]; then echo held; fi`)).trim() === 'held') return;
    await sleep(300);
  }
  assert.fail(`no deploy lock ${lockDir} appeared on ${node} within ${timeoutMs / 1000} s`);
}
