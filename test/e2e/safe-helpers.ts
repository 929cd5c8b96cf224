/**
 * Shared pieces of the safe-deploy end-to-end tests (test/e2e/safe-*.test.ts):
 * a temporary project made from the fixture app, set-up sandbox nodes (from a
 * snapshot taken after setup-node, so only the first run pays for apt), HTTP
 * from this machine with the site's Host header, a poller that records every
 * answer while a deploy runs, and the CLI run in the background so a test can
 * kill it when it reaches a phase.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { parseDocument } from 'yaml';
import { quote } from '../../core/shell/sh.ts';
import { SNAPSHOT_DIR } from '../../tools/sandbox/commands.ts';
import { sandboxNetNames } from '../../tools/sandbox/naming.ts';
import { removeSnapshot, rootfsTarball, type SandboxInfo } from '../../tools/sandbox/lib.ts';
import { REPO_ROOT, runCli, withPreparedSandbox, type CliResult, type SnapshotRecipe } from './harness.ts';

export const SAFE_FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'apps', 'safe-site');
/** The safe-site app with every stack part on (see its kraftwerk.yaml): the fault-injection suites' project. */
export const FAULTS_FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'faults', 'site');
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

  /** A copy of the safe-site fixture; with `overlay`, that folder's files replace or join its files (e.g. FAULTS_FIXTURE). */
  static create(t: TestContext, overlay?: string): SafeProject {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-safe-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(SAFE_FIXTURE, dir, { recursive: true });
    if (overlay) cpSync(overlay, dir, { recursive: true });
    return new SafeProject(dir);
  }

  private readonly file = (name: string) => path.join(this.dir, name);

  /** Change kraftwerk.yaml through yaml's document API (comments stay). */
  editConfig(edit: (doc: ReturnType<typeof parseDocument>) => void): this {
    const doc = parseDocument(readFileSync(this.file('kraftwerk.yaml'), 'utf8'));
    edit(doc);
    writeFileSync(this.file('kraftwerk.yaml'), doc.toString());
    return this;
  }

  /**
   * Make the project version `version`: page, environ and requirements, with
   * the fixture's working app.py. `ownVenv: false` keeps the requirements
   * (and so the venv) of the fixture, for tests where building one per
   * version would only cost time.
   */
  setVersion(version: string, options: { ownVenv?: boolean } = {}): this {
    writeFileSync(this.file('version.txt'), `${version}\n`);
    cpSync(path.join(SAFE_FIXTURE, 'app.py'), this.file('app.py'));
    const requirements = readFileSync(path.join(SAFE_FIXTURE, 'requirements.txt'), 'utf8');
    writeFileSync(this.file('requirements.txt'), options.ownVenv === false ? requirements : `${requirements}# version ${version}\n`);
    this.editConfig((doc) => doc.setIn(['environ', 'SAFE_GREETING'], `hello-${version}`));
    return this;
  }

  /** requirements.txt as given (e.g. a package from an index that never answers, to hold pip). */
  setRequirements(text: string): this {
    writeFileSync(this.file('requirements.txt'), text);
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
    return this.editConfig((doc) => doc.set('nodes', nodes));
  }

  /** `release:` commands of kraftwerk.yaml. */
  setReleaseCommands(commands: string[]): this {
    return this.editConfig((doc) => doc.set('release', commands));
  }

  /** A file of random (incompressible) bytes, so that rsync takes a while. */
  addBlob(megabytes: number): this {
    writeFileSync(this.file('blob.bin'), randomBytes(megabytes * 1024 * 1024));
    return this;
  }

  removeBlob(): this {
    rmSync(this.file('blob.bin'), { force: true });
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

/**
 * examples/flask-hello in a temporary folder named `site` (the site's name),
 * with `domain`, no aliases, and `edit` applied to its kraftwerk.yaml; removed after the test.
 */
export function flaskHelloProject(t: TestContext, site: string, domain: string, edit: (doc: ReturnType<typeof parseDocument>) => void): string {
  const parent = mkdtempSync(path.join(tmpdir(), `kw-${site}-`));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  const dir = path.join(parent, site);
  mkdirSync(dir);
  cpSync(path.join(REPO_ROOT, 'examples', 'flask-hello'), dir, { recursive: true });
  const file = path.join(dir, 'kraftwerk.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  doc.set('domain', domain);
  doc.delete('aliases');
  edit(doc);
  writeFileSync(file, doc.toString());
  return dir;
}

// ---------------------------------------------------------------- set-up nodes

/** Files whose content decides what setup-node does: a change makes a new snapshot. */
function setupInputs(): string[] {
  const files = ['core/cli/actions/setup-node.ts', 'core/lifecycle/probe.ts', 'core/engine/registry.ts', 'plugins/builtins.ts', 'core/engine/context.ts'].map((f) => path.join(REPO_ROOT, f));
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
  let r = await runCli(['sandbox', 'ssh', name, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
  // 255 is ssh's own failure (no connection: a busy machine can time out the banner); the script did not run, so again.
  for (let attempt = 1; r.code === 255 && attempt < 3; attempt++) {
    await sleep(2000);
    r = await runCli(['sandbox', 'ssh', name, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
  }
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

/** GET `urlPath` from the node's nginx at `address` with the site's Host header (or `host`), as a browser would. */
export function get(address: string, urlPath = '/', timeoutMs = 5000, host = DOMAIN): Promise<Answer> {
  const at = Date.now();
  return new Promise((resolve) => {
    const req = request({ host: address, port: 80, path: urlPath, headers: { Host: host }, agent: false, timeout: timeoutMs }, (res) => {
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
  /** Send `signal` to the CLI's whole process group, as Ctrl-C in a terminal does. */
  signal(signal: NodeJS.Signals): void;
  /** Resolves with the result when the CLI exits within `timeoutMs`, else with undefined (it keeps running). */
  exitWithin(timeoutMs: number): Promise<CliResult | undefined>;
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
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  const killGroup = () => signalGroup('SIGKILL');
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
    signal: signalGroup,
    running: () => !exited,
    exitWithin(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
      return Promise.race([done, late]).finally(() => clearTimeout(timer));
    },
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

// ---------------------------------------------------------------- faults (test/e2e/faults*.test.ts)

/** The marker of a version in the faults fixture's configuration: worker command, cron job, alias. */
export function markerOf(version: string): string {
  return `kwv-${version}`;
}

/** The alias the faults fixture has in version `version` (answers with a redirect while that version's nginx file is live). */
export function aliasOf(version: string): string {
  return `${markerOf(version)}.${DOMAIN}`;
}

/**
 * Make the faults fixture version `version`: the safe-site page and environ,
 * and the version's marker in the worker's command, the cron job and the
 * alias, so the configuration a node runs shows which release it came from.
 */
export function setFaultVersion(project: SafeProject, version: string, options: { ownVenv?: boolean } = {}): SafeProject {
  const marker = markerOf(version);
  return project.setVersion(version, options).editConfig((doc) => {
    doc.set('aliases', [aliasOf(version)]);
    doc.setIn(['processes', 'worker'], `python3 worker.py ${marker}`);
    doc.setIn(['cron', 0, 'command'], `true ${marker}`);
  });
}

/**
 * Restart every service on the node, as a reboot would (without losing the
 * sandbox): every runit service (a service with a `down` file is stopped, as
 * a boot would not start it), nginx, PostgreSQL, Redis and cron. sshd stays:
 * it is the way in, and a restart of it starts nothing of a site's. What
 * serves afterwards is what the files on the node say.
 */
export async function restartNode(node: string): Promise<void> {
  // All at once (a boot does not wait either); each failure is printed, so the output must be empty.
  // A system service that runit supervises here (cron in the sandbox) is restarted by runit only.
  const out = await onNode(
    node,
    `for s in /etc/service/*; do
  [ "\${s##*/}" = ssh ] && continue
  # A service with a check script (default-syslog: no syslog runs here) is restarted without waiting for it.
  if [ -e "$s/down" ]; then sv -w 30 down "$s" >/dev/null || echo "sv down $s failed: $(sv status "$s")"
  elif [ -x "$s/check" ]; then sv term "$s" >/dev/null
  else sv -w 30 restart "$s" >/dev/null || echo "sv restart $s failed: $(sv status "$s")"; fi &
done
for name in nginx postgresql redis-server cron; do
  [ -e "/etc/service/$name" ] && continue
  [ -x "/etc/init.d/$name" ] && { service "$name" restart >/dev/null 2>&1 || echo "service $name restart failed"; } &
done
wait`,
  );
  assert.equal(out.trim(), '', `restarting every service on ${node}`);
}

/** Which versions' markers the node's live configuration carries: the running worker processes and the cron files cron reads. */
export async function liveMarkers(node: string): Promise<{ worker: string[]; cron: string[] }> {
  const out = await onNode(
    node,
    `echo "worker $(pgrep -af 'worker[.]py kwv-' | grep -o 'kwv-[A-Za-z0-9]*' | sort -u | tr '\\n' ' ')"
cron=''
for f in /etc/cron.d/*; do
  case "\${f##*/}" in *.*) continue;; esac  # cron skips names with a dot
  cron="$cron $(grep -o 'kwv-[A-Za-z0-9]*' "$f" | sort -u | tr '\\n' ' ')"
done
echo "cron $cron"`,
  );
  const field = (name: string) =>
    (new RegExp(`^${name} (.*)$`, 'm').exec(out)?.[1] ?? '').split(/\s+/).filter(Boolean).sort();
  return { worker: [...new Set(field('worker'))], cron: [...new Set(field('cron'))] };
}

/**
 * The node runs the whole configuration of `version` (faults fixture): its
 * page with its environment, its worker (and no other version's), no other
 * version's cron job, and its alias in nginx (no other version's). Waits up
 * to 30 s for the page (services just restarted).
 */
export async function assertWholeVersionLive(address: string, node: string, version: string, others: string[]): Promise<void> {
  assert.equal(await waitForPage(address), pageOf(version), `GET / serves version ${version} with its own environment`);
  const markers = await liveMarkers(node);
  assert.deepEqual(markers.worker, [markerOf(version)], `the running worker is version ${version}'s (ps shows ${markers.worker.join(', ') || 'none'})`);
  const foreign = markers.cron.filter((m) => others.map(markerOf).includes(m));
  assert.deepEqual(foreign, [], `the cron files cron reads name only version ${version}'s job (found ${markers.cron.join(', ')})`);
  const alias = await get(address, '/', 5000, aliasOf(version));
  assert.equal(alias.status, 301, `nginx has version ${version}'s alias ${aliasOf(version)}: ${describeAnswer(alias)}`);
  for (const other of others) {
    const a = await get(address, '/', 5000, aliasOf(other));
    assert.ok(a.status === undefined || a.status === 444, `nginx does not have version ${other}'s alias ${aliasOf(other)}: ${describeAnswer(a)}`);
  }
}

/** The host-side end of the sandbox's veth pair: down, the sandbox is cut off from this machine (as a dropped network). */
export function sandboxLink(name: string): { down(): void; up(): void } {
  const { vethHost } = sandboxNetNames(name);
  const set = (state: 'up' | 'down') => {
    const r = spawnSync('ip', ['link', 'set', vethHost, state], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, `ip link set ${vethHost} ${state}: ${r.stderr}`);
  };
  return { down: () => set('down'), up: () => set('up') };
}

/** Run `fn`, which may drop the sandbox's network (`link.down()`); the network is always back afterwards, also on failure. */
export async function withNetworkRestored<T>(name: string, fn: (link: { down(): void }) => Promise<T>): Promise<T> {
  const link = sandboxLink(name);
  try {
    return await fn(link);
  } finally {
    link.up();
    // Until sshd answers again (bounded): the next step needs the node.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await runCli(['sandbox', 'ssh', name, '--', 'true'], { timeoutMs: 20_000 });
      if (r.code === 0 || Date.now() > deadline) break;
      await sleep(1000);
    }
  }
}

/** Wait (bounded) until `script` on the node prints something; returns that output. */
export async function waitOnNode(node: string, script: string, what: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const out = (await onNode(node, script)).trim();
    if (out) return out;
    await sleep(500);
  }
  assert.fail(`${what}: not seen on ${node} within ${timeoutMs / 1000} s`);
}

export interface FaultResult {
  fault: string;
  checked: string;
  /** 'not run': the suite's time budget was spent before this case (never counted as survived). */
  survived: boolean | 'todo' | 'not run';
}

/**
 * The count of a fault suite: each fault is one test case; the suite ends
 * with "faults survived N of M" and a markdown table of the cases (the
 * source of docs/benchmarks.md's "Faults survived"). With `budgetMs`, a case
 * that would start after the budget is spent is skipped and reported as not
 * run, so a slow machine ends the suite inside the runner's timeout with an
 * honest count instead of a timeout that reports nothing.
 */
export class FaultCounter {
  readonly results: FaultResult[] = [];
  private readonly deadline: number;

  constructor(budgetMs = Infinity) {
    this.deadline = Date.now() + budgetMs;
  }

  /** Run one fault as its own test case; it counts as survived when `fn` passes. */
  async fault(t: TestContext, fault: string, checked: string, fn: (t: TestContext) => Promise<void>, options: { todo?: string } = {}): Promise<boolean> {
    if (Date.now() > this.deadline) {
      await t.test(fault, { skip: 'the suite\'s time budget is spent (a slow machine): not run' }, () => {});
      this.results.push({ fault, checked, survived: 'not run' });
      return false;
    }
    let survived = false;
    await t.test(fault, { todo: options.todo }, async (st) => {
      await fn(st);
      survived = true;
    });
    this.results.push({ fault, checked, survived: options.todo && !survived ? 'todo' : survived });
    t.diagnostic(`${fault}: ${survived ? 'survived' : options.todo ? `not survived (todo: ${options.todo})` : 'NOT survived'}`);
    return survived;
  }

  report(t: TestContext, suite: string): void {
    const run = this.results.filter((r) => r.survived !== 'not run');
    const survived = run.filter((r) => r.survived === true).length;
    const label = { true: 'yes', false: 'no', todo: 'no (todo)', 'not run': 'not run' } as const;
    for (const r of this.results) t.diagnostic(`| ${r.fault} | ${r.checked} | ${label[String(r.survived) as keyof typeof label]} |`);
    const notRun = this.results.length - run.length;
    t.diagnostic(`${suite}: faults survived ${survived} of ${run.length}${notRun ? ` (${notRun} more not run: time budget)` : ''}`);
  }
}

/** A fault suite's time budget: 15 minutes, or KRAFTWERK_E2E_FAULTS_BUDGET_MIN (a shorter run on a busy machine). */
export function faultsBudgetMs(): number {
  const minutes = Number(process.env.KRAFTWERK_E2E_FAULTS_BUDGET_MIN ?? 15);
  return (Number.isFinite(minutes) && minutes > 0 ? minutes : 15) * 60_000;
}
