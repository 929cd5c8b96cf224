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
import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { buildRsyncArgs, runRsync } from '../core/remote/rsync.ts';
import { SNAPSHOT_DIR, sshArgv } from '../tools/sandbox/commands.ts';
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
  /** The program's own peak resident set, KiB (only for `kraftwerk(…, { peakRss: true })`). */
  peakRssKb?: number;
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

/**
 * Loaded before the CLI when its peak memory is wanted: at exit it writes the
 * Node process's own maxRSS (children such as rsync and ssh not included) as
 * the last line on stderr. No dependency on GNU time being installed.
 */
const PEAK_RSS_PRELOAD = `data:text/javascript,${encodeURIComponent(
  "import{writeSync}from'node:fs';process.on('exit',()=>{writeSync(2,'\\nkraftwerk-bench-peak-rss-kb: '+process.resourceUsage().maxRSS+'\\n')})",
)}`;
const PEAK_RSS_LINE = /\nkraftwerk-bench-peak-rss-kb: (\d+)\n$/;

/** The built CLI, exactly as a user runs it (`node bin/kraftwerk.js …`). */
export async function kraftwerk(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; peakRss?: boolean } = {},
): Promise<Timed> {
  if (!options.peakRss) return run([process.execPath, CLI, ...args], options);
  const r = await run([process.execPath, '--import', PEAK_RSS_PRELOAD, CLI, ...args], options);
  const m = PEAK_RSS_LINE.exec(r.stderr);
  return m ? { ...r, stderr: r.stderr.slice(0, m.index), peakRssKb: Number(m[1]) } : r;
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

/**
 * `kraftwerk deploy <target>` in one project, again and again: waits for the
 * next second between deploys (release ids are to the second) and throws a
 * BenchFailure with the output's tail when a deploy fails.
 */
export function deployer(projectDir: string): (target: string, label: string, options?: { verbose?: boolean; timings?: boolean; peakRss?: boolean; timeoutMs?: number }) => Promise<Timed> {
  let lastEnd: number | undefined;
  return async (target, label, options = {}) => {
    await afterSecondOf(lastEnd);
    const argv = [...(options.verbose ? ['--verbose'] : []), 'deploy', target, ...(options.timings ? ['--timings'] : [])];
    const r = await kraftwerk(argv, { cwd: projectDir, peakRss: options.peakRss, timeoutMs: options.timeoutMs });
    lastEnd = Date.now();
    if (r.code !== 0) throw new BenchFailure(`deploy ${target} (${label}) failed (exit ${r.code}):\n${outputTail(r)}`);
    return r;
  };
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

/** `deploy --timings` lines (`timings: <phase> <task> N ms`, also `cli start-up` and the totals), by everything before the time. */
export function timingsOf(output: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of output.matchAll(/^timings: (.+) (\d+) ms$/gm)) out.set(m[1]!.replace(/\d{8}T\d{6}Z/g, '<id>'), Number(m[2]));
  return out;
}

/** rsync's "Total bytes sent: N" lines (one per node), summed. */
export function rsyncBytesSent(output: string): number | undefined {
  const all = [...output.matchAll(/Total bytes sent: ([\d,.]+)/g)].map((m) => Number(m[1]!.replace(/[,.]/g, '')));
  return all.length ? all.reduce((a, b) => a + b, 0) : undefined;
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
  const one = async (name: string): Promise<BenchSandbox> => {
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
    return benchSandbox(info);
  };
  // The first one makes the snapshot when there is none; the rest start from it,
  // a few at a time (tools/sandbox locks its state, so several may come up at once).
  const out = [await one(names[0]!)];
  const rest = names.slice(1);
  for (let i = 0; i < rest.length; i += SETUP_AT_ONCE) {
    // All of a batch settle before a failure is thrown, so teardown finds every sandbox made.
    const batch = await Promise.allSettled(rest.slice(i, i + SETUP_AT_ONCE).map(one));
    for (const r of batch) {
      if (r.status === 'rejected') throw r.reason;
      out.push(r.value);
    }
  }
  return out;
}

/** Sandboxes brought up and set up at once from the snapshot (their setup-node runs beside each other on the machine's CPUs). */
const SETUP_AT_ONCE = 4;

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

/** What the peers need from a project's kraftwerk.yaml (as the example writes it; the CLI validates the real thing). */
export async function projectConfig(projectDir: string): Promise<{ domain: string; wsgi: string; workers: number }> {
  const config = parseYaml(await readFile(path.join(projectDir, 'kraftwerk.yaml'), 'utf8')) as { domain: string | string[]; wsgi?: string; workers?: number };
  return { domain: [config.domain].flat()[0]!, wsgi: config.wsgi ?? 'wsgi:application', workers: config.workers ?? 2 };
}

/**
 * Wait until the site answers on every sandbox: a reload still going on would
 * slow the next measurement down. A BenchFailure naming the sandbox when one never does.
 */
export async function settle(sandboxes: readonly SandboxInfo[], domain: string, urlPath = '/health'): Promise<void> {
  for (const s of sandboxes) {
    if (!(await waitForSite(s.address, domain, urlPath))) throw new BenchFailure(`the site does not answer on ${s.name} (${s.address}, Host: ${domain})`);
  }
}

/** The canonical domain from a project's kraftwerk.yaml. */
export async function projectDomain(projectDir: string): Promise<string> {
  return (await projectConfig(projectDir)).domain;
}

/** The last lines of a program's output, for a failure message. */
export function outputTail(r: Pick<Timed, 'stdout' | 'stderr'>, lines = 25): string {
  return `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------- the floor and the peers' common parts

/**
 * A shell word that expands to the site's live web slot on the node (the
 * runit service of the site without a `down` file). The site name is the
 * project folder's name.
 */
export const liveSlot = (site: string): string => `$(for s in /etc/service/kraftwerk-${site}@*; do [ -e "$s/down" ] || echo "$s"; done)`;

/** The reload every peer and the floor end with: uWSGI's graceful reload of the live slot, through runit. */
export const reloadCommand = (site: string): string => `sv hup ${liveSlot(site)}`;

/** An OpenSSH command on a sandbox; a BenchFailure naming `what` when it fails. */
export async function sshOk(sandbox: SandboxInfo, script: string, what: string): Promise<Timed> {
  const r = await run(sshArgv(sandbox.target, ['sh', '-c', script]), { timeoutMs: 5 * 60_000 });
  if (r.code !== 0) throw new BenchFailure(`${what} on ${sandbox.name} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r;
}

/**
 * The floor: what a hand-written `rsync && ssh sv hup` costs against the same
 * sandbox. rsync copies the tree into a new folder with --link-dest to the
 * previous one (exactly the arguments core uses), then one OpenSSH command
 * reloads the site's live slot.
 */
export class Floor {
  private previous?: string;
  private count = 0;
  private readonly dir: string;

  constructor(
    private readonly sandbox: BenchSandbox,
    private readonly source: string,
    private readonly site: string,
  ) {
    // root's home on the sandbox: only root reads and writes it, and no site user can.
    this.dir = `/root/kraftwerk-bench-floor-${site}`;
  }

  async prepare(): Promise<void> {
    await sshOk(this.sandbox, `rm -rf ${this.dir} && mkdir -p ${this.dir}`, `making ${this.dir}`);
    this.previous = undefined;
  }

  async measure(): Promise<{ ms: number; bytesSent: number; wireBytes: number }> {
    const dest = `${this.dir}/${++this.count}`;
    const args = buildRsyncArgs({ target: this.sandbox.target, source: this.source, dest, linkDest: this.previous, excludes: [] });
    const wireBefore = await this.sandbox.bytesToSandbox();
    const started = performance.now();
    const stats = await runRsync(args, undefined, this.sandbox.name);
    const hup = await run(sshArgv(this.sandbox.target, ['sh', '-c', reloadCommand(this.site)]));
    const elapsed = performance.now() - started;
    if (hup.code !== 0) throw new BenchFailure(`floor: sv hup of the live slot failed (exit ${hup.code}): ${hup.stderr.trim()}`);
    // Only the newest copy is needed as the next --link-dest; older ones would fill the disk on the big trees.
    if (this.previous) await sshOk(this.sandbox, `rm -rf ${this.previous}`, 'removing an old floor copy');
    this.previous = dest;
    return { ms: elapsed, bytesSent: stats.bytesSent, wireBytes: (await this.sandbox.bytesToSandbox()) - wireBefore };
  }
}

/** The floor on several sandboxes at once (what a group deploy must at least cost): the slowest of them. */
export async function floorOnAll(floors: readonly Floor[]): Promise<number> {
  const started = performance.now();
  await Promise.all(floors.map((f) => f.measure()));
  return performance.now() - started;
}

/**
 * Make sure a Debian package is installed (`present` says whether it is), with
 * apt-get when it is not: benches run as root on a fresh machine. Bounded, never
 * interactive.
 */
export async function ensureDebianPackage(pkg: string, present: () => Promise<boolean>): Promise<void> {
  if (await present()) return;
  note(`installing the Debian package ${pkg} (apt-get install -y ${pkg})`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  let r = await run(['apt-get', 'install', '-y', '--no-install-recommends', pkg], { env, timeoutMs: 10 * 60_000 });
  if (r.code !== 0) {
    // A fresh machine may have no package lists yet.
    await run(['apt-get', 'update'], { env, timeoutMs: 5 * 60_000 });
    r = await run(['apt-get', 'install', '-y', '--no-install-recommends', pkg], { env, timeoutMs: 10 * 60_000 });
  }
  if (r.code !== 0 || !(await present())) throw new BenchFailure(`could not install the Debian package ${pkg} (exit ${r.code}):\n${outputTail(r, 10)}`);
}

/** True when `argv` runs and exits 0. */
export async function succeeds(argv: readonly string[]): Promise<boolean> {
  return (await run(argv, { timeoutMs: 60_000 }).catch(() => ({ code: -1 }))).code === 0;
}

// ---------------------------------------------------------------- figures for docs/: CSV and a line chart

export const DOCS_DIR = path.join(REPO_ROOT, 'docs');

/** A CSV file (values here are numbers and plain words; a comma or quote in one is quoted). */
export async function writeCsv(file: string, header: readonly string[], rows: readonly (string | number)[][]): Promise<void> {
  const cell = (v: string | number) => (typeof v === 'string' && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : String(v));
  await writeFile(file, [header, ...rows].map((r) => r.map(cell).join(',')).join('\n') + '\n');
  note(`wrote ${path.relative(REPO_ROOT, file)}`);
}

export interface ChartSeries {
  name: string;
  points: [number, number][];
  /** Drawn dashed (the floors). */
  dashed?: boolean;
}

const escapeXml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/**
 * A small SVG line chart: one polyline per series over linear axes from 0,
 * ticks at the x values given, a legend. `logX` spaces x by its logarithm
 * (file counts 50, 500, 5000).
 */
export function lineChart(options: { title: string; xLabel: string; yLabel: string; series: readonly ChartSeries[]; logX?: boolean }): string {
  const W = 660;
  const H = 320;
  const left = 60;
  // Room for the legend right of the plot.
  const right = 230;
  const top = 36;
  const bottom = 48;
  const xs = [...new Set(options.series.flatMap((s) => s.points.map(([x]) => x)))].sort((a, b) => a - b);
  const tx = (x: number) => (options.logX ? Math.log10(x) : x);
  const [x0, x1] = [tx(xs[0]!), tx(xs.at(-1)!)];
  const yMax = niceCeil(Math.max(...options.series.flatMap((s) => s.points.map(([, y]) => y))));
  const px = (x: number) => Math.round((left + (x1 === x0 ? 0 : ((tx(x) - x0) / (x1 - x0)) * (W - left - right))) * 10) / 10;
  const py = (y: number) => Math.round((H - bottom - (y / yMax) * (H - top - bottom)) * 10) / 10;
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2 - right / 2 + left / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(options.title)}</text>`);
  // Axes, y ticks at fifths of the range, x ticks at each measured x.
  out.push(`<path d="M${left} ${top}V${H - bottom}H${W - right}" fill="none" stroke="black"/>`);
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5;
    out.push(`<line x1="${left - 4}" y1="${py(y)}" x2="${W - right}" y2="${py(y)}" stroke="${i ? '#ddd' : 'black'}"/>`);
    out.push(`<text x="${left - 6}" y="${py(y) + 4}" text-anchor="end">${Math.round(y)}</text>`);
  }
  for (const x of xs) out.push(`<text x="${px(x)}" y="${H - bottom + 16}" text-anchor="middle">${x}</text>`);
  out.push(`<text x="${(left + W - right) / 2}" y="${H - 10}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(top + H - bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`);
  options.series.forEach((s, i) => {
    const color = colors[i % colors.length]!;
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    const pts = s.points.map(([x, y]) => `${px(x)},${py(y)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const [x, y] of s.points) out.push(`<circle cx="${px(x)}" cy="${py(y)}" r="3" fill="${color}"/>`);
    const ly = top + 10 + i * 20;
    out.push(`<line x1="${W - right + 14}" y1="${ly}" x2="${W - right + 38}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${W - right + 44}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** 1, 2 or 5 times a power of ten, at least x (a readable top for an axis). */
function niceCeil(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return ([1, 2, 5, 10].find((m) => m * p >= x) ?? 10) * p;
}

/** Write a chart into docs/. */
export async function writeChart(file: string, options: Parameters<typeof lineChart>[0]): Promise<void> {
  await writeFile(file, lineChart(options));
  note(`wrote ${path.relative(REPO_ROOT, file)}`);
}
