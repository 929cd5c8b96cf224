/**
 * What the bench scripts share: timing the real CLI, statistics, sandboxes
 * that are always torn down, a set-up snapshot reused between runs, a temp
 * copy of an example project, and counting SSH logins on a sandbox.
 *
 * Benchmarks report ratios against a floor measured in the same run; they
 * never assert an absolute time. They exit 1 only when something fails
 * functionally (a deploy that should succeed fails, a request fails).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { SNAPSHOT_DIR } from '../tools/sandbox/commands.ts';
import {
  assertSandboxSupport,
  hasSnapshot,
  missingPrograms,
  removeSnapshot,
  rootfsTarball,
  sandboxDown,
  sandboxUp,
  saveSnapshot,
  type SandboxInfo,
} from '../tools/sandbox/lib.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/**
 * The CLI under test: this checkout's build, or another build named by
 * KRAFTWERK_BENCH_CLI (e.g. a frozen copy, so that rebuilds of this checkout
 * during a long run do not change the code half-way).
 */
export const CLI = process.env.KRAFTWERK_BENCH_CLI ? path.resolve(process.env.KRAFTWERK_BENCH_CLI) : path.join(REPO_ROOT, 'bin', 'kraftwerk.js');
/** The checkout the CLI under test was built from (its sources key the set-up snapshot). */
const CLI_ROOT = path.resolve(path.dirname(CLI), '..');

// ---------------------------------------------------------------- output and failure

/** A functional failure: the bench prints it and exits 1 (after teardown). */
export class BenchFailure extends Error {}

/** Progress lines go to stderr so stdout holds only the figures. */
export function note(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** A plain text table, columns padded to their widest cell. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(line)].join('\n');
}

export const ms = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? 'n/a' : `${Math.round(x)} ms`);
export const ratio = (x: number, floor: number): string => (floor > 0 ? `${(x / floor).toFixed(2)}×` : 'n/a');

// ---------------------------------------------------------------- statistics

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile (p in 0..100); NaN for an empty list. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

// ---------------------------------------------------------------- command line of a bench

/** `--runs N` (and `--keep` to leave sandboxes up for a look afterwards). */
export function benchArgs(defaults: { runs: number }, extra: Record<string, { type: 'string' | 'boolean' }> = {}) {
  const { values } = parseArgs({
    options: { runs: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...extra },
    allowPositionals: false,
  });
  if (values.help) {
    // Called before any sandbox exists, so there is nothing to tear down.
    const names = ['runs', 'keep', ...Object.keys(extra)].map((k) => `--${k}`).join(' ');
    process.stdout.write(`options: ${names}\n(--runs N: repetitions, median reported; --keep: leave sandboxes up)\nsee docs/benchmarks.md\n`);
    process.exit(0);
  }
  const runs = values.runs === undefined ? defaults.runs : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new BenchFailure(`--runs: expected 1 to 100, found ${values.runs}`);
  return { ...values, runs, keep: Boolean(values.keep) } as Record<string, string | boolean | undefined> & { runs: number; keep: boolean };
}

// ---------------------------------------------------------------- running programs

export interface TimedLine {
  /** ms since the program was started. */
  at: number;
  line: string;
}

export interface Timed {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ms. */
  ms: number;
  /** stdout lines with the time each arrived (for per-task breakdowns). */
  lines: TimedLine[];
}

/** Run a program (no shell), bounded by `timeoutMs`; never throws for a non-zero exit. */
export function run(
  argv: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Timed> {
  const [program, ...args] = argv;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(program!, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const lines: TimedLine[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const at = performance.now() - started;
      stdout += chunk;
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      for (const line of parts) lines.push({ at, line });
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timeoutMs = options.timeoutMs ?? 15 * 60_000;
    const timer = setTimeout(() => {
      stderr += `\n(bench: killed after ${timeoutMs / 1000} s)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const elapsed = performance.now() - started;
      if (partial) lines.push({ at: elapsed, line: partial });
      resolve({ code, stdout, stderr, ms: elapsed, lines });
    });
  });
}

/** The built CLI, exactly as a user runs it (`node bin/kraftwerk.js …`). */
export function kraftwerk(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Timed> {
  return run([process.execPath, CLI, ...args], options);
}

/** Run the CLI and throw a BenchFailure with its output's tail when it fails. */
export async function kraftwerkOk(args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<Timed> {
  const r = await kraftwerk(args, options);
  if (r.code !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-25).join('\n');
    throw new BenchFailure(`kraftwerk ${args.join(' ')} failed (exit ${r.code}):\n${tail}`);
  }
  return r;
}

/** The CLI runs from dist/: refuse to measure a missing build, warn about a stale one. */
export async function checkBuild(): Promise<void> {
  if (process.env.KRAFTWERK_BENCH_CLI) {
    if (!existsSync(CLI)) throw new BenchFailure(`KRAFTWERK_BENCH_CLI: ${CLI} does not exist`);
    note(`measuring the CLI ${CLI} (KRAFTWERK_BENCH_CLI)`);
    return;
  }
  const built = path.join(REPO_ROOT, 'dist', 'core', 'cli', 'main.js');
  if (!existsSync(built)) throw new BenchFailure('the CLI is not built (dist/core/cli/main.js is missing): run npm run build first');
  const builtAt = (await stat(built)).mtimeMs;
  const newer = (await sourceFiles(['core', 'plugins'])).filter((f) => f.mtimeMs > builtAt + 1000).map((f) => f.rel);
  if (newer.length) note(`warning: dist/ is older than ${newer.length} source file(s) (e.g. ${newer[0]}); npm run build measures the current code`);
}

// ---------------------------------------------------------------- parsing the CLI's --verbose output

/** "<node>: N remote commands", printed by `kraftwerk --verbose deploy`. */
export function remoteCommands(output: string, node: string): number | undefined {
  const escaped = node.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${escaped}: (\\d+) remote commands$`, 'm').exec(output);
  return m ? Number(m[1]) : undefined;
}

/** rsync's "Total bytes sent: N" lines (one per node), summed. */
export function rsyncBytesSent(output: string): number | undefined {
  const all = [...output.matchAll(/Total bytes sent: ([\d,.]+)/g)].map((m) => Number(m[1]!.replace(/[,.]/g, '')));
  return all.length ? all.reduce((a, b) => a + b, 0) : undefined;
}

/**
 * Per-task wall time from the verbose renderer's [STARTED]/[COMPLETED] lines,
 * as they arrived: [title, ms] sorted slowest first. Titles change on
 * completion, so a task is matched by the order of starts and ends.
 */
export function taskDurations(lines: readonly TimedLine[]): [string, number][] {
  const open: { title: string; at: number; children: number }[] = [];
  const out: [string, number][] = [];
  for (const { at, line } of lines) {
    const started = /^\[STARTED\] (.*)$/.exec(line);
    if (started) {
      if (open.length) open.at(-1)!.children++;
      open.push({ title: started[1]!, at, children: 0 });
      continue;
    }
    const ended = /^\[(COMPLETED|SKIPPED|FAILED)\] (.*)$/.exec(line);
    if (ended && open.length) {
      const task = open.pop()!;
      // Groups (phases) contain the tasks that are listed themselves.
      if (task.children === 0) out.push([ended[2]!, at - task.at]);
    }
  }
  return out.sort((a, b) => b[1] - a[1]);
}

// ---------------------------------------------------------------- files

interface SourceFile {
  rel: string;
  abs: string;
  mtimeMs: number;
}

async function sourceFiles(dirs: readonly string[], root = REPO_ROOT): Promise<SourceFile[]> {
  const out: SourceFile[] = [];
  const walk = async (rel: string) => {
    const abs = path.join(root, rel);
    for (const entry of await readdir(abs, { withFileTypes: true }).catch(() => [])) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const child = path.join(rel, entry.name);
      if (entry.isDirectory()) await walk(child);
      else if (entry.isFile()) out.push({ rel: child, abs: path.join(root, child), mtimeMs: (await stat(path.join(root, child))).mtimeMs });
    }
  };
  for (const d of dirs) await walk(d);
  return out.sort((a, b) => a.rel.localeCompare(b.rel));
}

/**
 * A copy of examples/<name> in a fresh temp folder, under a folder of the
 * same name (the site name comes from the folder name). Removed by `cleanup`.
 */
export async function copyExample(name: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const parent = await mkdtemp(path.join(tmpdir(), 'kraftwerk-bench-'));
  const dir = path.join(parent, name);
  await cp(path.join(REPO_ROOT, 'examples', name), dir, { recursive: true });
  return { dir, cleanup: () => rm(parent, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------- sandboxes

const live = new Set<string>();
let keepSandboxes = false;
let hooked = false;

/** Sandboxes made by this bench are removed on exit, failure, Ctrl-C and SIGTERM (unless --keep). */
function hookSignals(): void {
  if (hooked) return;
  hooked = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      note(`${signal}: removing sandboxes ${[...live].join(', ') || '(none)'}`);
      void teardownSandboxes().finally(() => process.exit(130));
    });
  }
}

export async function teardownSandboxes(): Promise<void> {
  if (keepSandboxes) {
    if (live.size) note(`--keep: sandboxes left up: ${[...live].join(', ')} (remove with: kraftwerk sandbox down <name>)`);
    return;
  }
  const names = [...live];
  await Promise.allSettled(
    names.map(async (n) => {
      await sandboxDown(n);
      live.delete(n);
    }),
  );
}

/** Why this machine cannot make sandboxes, or undefined when it can. */
export async function sandboxUnsupported(): Promise<string | undefined> {
  try {
    assertSandboxSupport();
  } catch (e) {
    return (e as Error).message;
  }
  const missing = await missingPrograms();
  return missing.length ? `missing programs: ${missing.join(', ')}` : undefined;
}

const SNAPSHOT_PREFIX = 'bench-setup-';

/**
 * Snapshot key for "setup-node of this project done": changes whenever the
 * code that sets a node up, the project's config or the base root changes.
 */
export async function setupSnapshotKey(projectDir: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(path.basename(rootfsTarball()));
  for (const f of await sourceFiles(['core', 'plugins'], CLI_ROOT)) {
    if (!/\.(ts|ejs|conf|sh)$/.test(f.rel)) continue;
    hash.update(f.rel).update('\0').update(await readFile(f.abs)).update('\0');
  }
  hash.update(await readFile(path.join(projectDir, 'kraftwerk.yaml')));
  return `${SNAPSHOT_PREFIX}${path.basename(projectDir)}-${hash.digest('hex').slice(0, 16)}`;
}

/** Older bench snapshots of the same project are dead weight (about a GB each). */
async function removeOlderSnapshots(keep: string): Promise<void> {
  const project = keep.slice(0, keep.lastIndexOf('-') + 1);
  for (const f of await readdir(SNAPSHOT_DIR).catch(() => [] as string[])) {
    if (f.startsWith(project) && f.endsWith('.tar') && f !== `${keep}.tar`) {
      // The library's removal also drops the unpacked copy sandboxes are overlaid on.
      await removeSnapshot(f.slice(0, -'.tar'.length));
      note(`removed the outdated snapshot ${f}`);
    }
  }
}

export interface BenchSandbox extends SandboxInfo {
  /** Total of "Accepted …" login lines in the sandbox's sshd output so far. */
  logins(): Promise<number>;
  /** Bytes this machine has sent to the sandbox so far, everything on the wire (its veth link's counter). */
  bytesToSandbox(): Promise<number>;
}

function benchSandbox(info: SandboxInfo): BenchSandbox {
  return {
    ...info,
    // sshd runs with -e under runsvdir, so its log lines land in the sandbox's console log.
    logins: async () => ((await readFile(info.record.consoleLog, 'utf8').catch(() => '')).match(/^Accepted \S+ for /gm) ?? []).length,
    bytesToSandbox: async () => Number(await readFile(`/sys/class/net/${info.record.vethHost}/statistics/tx_bytes`, 'utf8')),
  };
}

/**
 * Bring up sandboxes `names` with the stack set up for the project in
 * `projectDir`: from the bench's snapshot when there is one (setup-node then
 * runs again, which is quick and starts the services), else the first one is
 * set up from scratch and saved as the snapshot for the rest and for later runs.
 */
export async function setUpSandboxes(names: readonly string[], projectDir: string, options: { keep?: boolean } = {}): Promise<BenchSandbox[]> {
  hookSignals();
  keepSandboxes = Boolean(options.keep);
  const key = await setupSnapshotKey(projectDir);
  const out: BenchSandbox[] = [];
  for (const name of names) {
    live.add(name);
    const fromSnapshot = (await hasSnapshot(key)) ? key : undefined;
    note(`sandbox ${name}: up${fromSnapshot ? ` from snapshot ${key}` : ' (no snapshot yet: full setup-node, a few minutes)'}`);
    await sandboxDown(name);
    const info = await sandboxUp(name, { fromSnapshot });
    const setup = await kraftwerkOk(['setup-node', name], { cwd: projectDir, timeoutMs: 30 * 60_000 });
    note(`sandbox ${name}: setup-node took ${ms(setup.ms)}`);
    if (!fromSnapshot) {
      note(`saving snapshot ${key}`);
      await saveSnapshot(name, key);
      await removeOlderSnapshots(key);
    }
    out.push(benchSandbox(info));
  }
  return out;
}

/**
 * Run a bench body: checks, then `fn`, then teardown whatever happened.
 * Exit code 0 unless something failed functionally (or the machine cannot run it: 2).
 */
export async function main(fn: () => Promise<void>, options: { needsSandbox: boolean } = { needsSandbox: true }): Promise<void> {
  try {
    if (options.needsSandbox) {
      const why = await sandboxUnsupported();
      if (why) {
        process.stderr.write(`bench: cannot make sandboxes on this machine: ${why}\n`);
        process.exitCode = 2;
        return;
      }
    }
    await checkBuild();
    process.stdout.write(`machine at start: ${await machineState()}\n`);
    await fn();
    process.stdout.write(`machine at end: ${await machineState()}\n`);
  } catch (e) {
    process.stderr.write(`bench: FAILED: ${e instanceof BenchFailure ? e.message : ((e as Error).stack ?? String(e))}\n`);
    process.exitCode = 1;
  } finally {
    await teardownSandboxes();
  }
}

/**
 * How busy the machine is: figures from a shared machine are only comparable
 * within one run, and this says how shared it was.
 */
export async function machineState(): Promise<string> {
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  // "some avg60=…": share of the last minute in which some runnable task waited for a CPU.
  const pressure = /^some .*avg60=([\d.]+)/m.exec(await readFile('/proc/pressure/cpu', 'utf8').catch(() => ''))?.[1];
  return `${cpus().length} CPUs, load average ${load}${pressure ? `, CPU pressure ${pressure}% (tasks waiting for a CPU, last minute)` : ''}`;
}

export const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));

/**
 * Release ids are the UTC time to the second: two deploys of one site in the
 * same second would get the same id. Wait for the second after the one in
 * which the previous deploy ended (its id was taken before it ended).
 */
export async function afterSecondOf(previousEnd: number | undefined): Promise<void> {
  if (previousEnd === undefined) return;
  const wait = (Math.floor(previousEnd / 1000) + 1) * 1000 - Date.now();
  if (wait > 0) await sleep(wait + 5);
}

// ---------------------------------------------------------------- HTTP to a sandbox site

export interface HttpResult {
  /** HTTP status, or undefined when the request failed (connection error, timeout). */
  status?: number;
  error?: string;
  body: string;
  ms: number;
}

/**
 * One GET to `address` (a sandbox address or 127.0.0.1, nothing else) with
 * `Host: domain`, on a fresh connection (no keep-alive): every request must
 * find a listening nginx and a live uWSGI.
 */
export function httpGet(address: string, domain: string, urlPath: string, timeoutMs = 10_000): Promise<HttpResult> {
  if (!/^(10\.213\.\d+\.\d+|127\.0\.0\.1)$/.test(address)) {
    return Promise.reject(new BenchFailure(`refusing to send requests to ${address}: only sandbox addresses and 127.0.0.1`));
  }
  return new Promise((resolve) => {
    const started = performance.now();
    let settled = false;
    const done = (r: Omit<HttpResult, 'ms'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...r, ms: performance.now() - started });
    };
    const req = httpRequest(
      { host: address, port: 80, path: urlPath, method: 'GET', headers: { Host: domain, Connection: 'close' }, agent: false, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => done({ status: res.statusCode, body }));
        res.on('error', (e) => done({ error: e.message, body }));
      },
    );
    req.on('timeout', () => {
      req.destroy(new Error(`no answer within ${timeoutMs} ms`));
    });
    req.on('error', (e) => done({ error: e.message, body: '' }));
    req.end();
  });
}

/** Wait (bounded) until the site answers 2xx on `urlPath`; false when it never did. */
export async function waitForSite(address: string, domain: string, urlPath: string, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await httpGet(address, domain, urlPath, 2000);
    if (r.status !== undefined && r.status >= 200 && r.status < 300) return true;
    await sleep(100);
  }
  return false;
}

/** The canonical domain from a project's kraftwerk.yaml. */
export async function projectDomain(projectDir: string): Promise<string> {
  const config = parseYaml(await readFile(path.join(projectDir, 'kraftwerk.yaml'), 'utf8')) as { domain: string | string[] };
  return [config.domain].flat()[0]!;
}
