/**
 * bench/load: proof under load. A bounded stream of HTTP requests from this
 * machine to a sandbox site (fresh connection per request, `--concurrency`
 * at a time, at most `--rate` per second, Host header = the site's domain)
 * while the site is deployed `--deploys` times in a row, alternating two
 * versions of the app, with one broken version (an import error) in the
 * middle. Every request must succeed: a connection error, a timeout or a 5xx
 * is a failure and the bench exits 1. Reports p50/p99 latency during deploys
 * against steady state.
 * Run: npm run bench:load  (or node --import tsx bench/load.ts --deploys 10)
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  BenchFailure,
  type HttpResult,
  afterSecondOf,
  benchArgs,
  copyExample,
  httpGet,
  kraftwerk,
  main,
  ms,
  note,
  percentile,
  projectDomain,
  setUpSandboxes,
  sleep,
  table,
  waitForSite,
} from './lib.ts';

const SANDBOX = 'bench-load';
const EXAMPLE = 'flask-hello';
const PROBE_PATH = '/bench-version';

type Version = 'a' | 'b' | 'broken';

/** The example's app.py plus a route that names the version; the broken one cannot be imported. */
function appSource(base: string, version: Version): string {
  const served = version === 'broken' ? 'broken' : version;
  const route = `\n\n@app.get(${JSON.stringify(PROBE_PATH)})\ndef bench_version():\n    return ${JSON.stringify(`${served}\n`)}\n`;
  const body = `${base.trimEnd()}${route}`;
  return version === 'broken' ? `import kraftwerk_bench_no_such_module  # bench: a release that fails to import\n${body}` : body;
}

/** Alternate b, a, b, … with the broken version in the middle. */
function deployPlan(count: number): Version[] {
  const plan: Version[] = [];
  const broken = Math.floor(count / 2);
  let next: Version = 'b';
  for (let i = 0; i < count; i++) {
    if (i === broken) {
      plan.push('broken');
      continue;
    }
    plan.push(next);
    next = next === 'a' ? 'b' : 'a';
  }
  return plan;
}

interface RequestRecord extends HttpResult {
  /** ms since the bench's origin. */
  start: number;
}

interface DeployRecord {
  version: Version;
  start: number;
  end: number;
  code: number | null;
  /** What went wrong functionally (a good version failed, a broken one went through). */
  problem?: string;
  tail: string;
}

const failed = (r: HttpResult) => r.status === undefined || r.status >= 500;

/** Requests from `concurrency` loops sharing one schedule of `rate` starts per second, until stopped. */
class LoadGenerator {
  readonly records: RequestRecord[] = [];
  private stopped = false;
  private nextSlot = 0;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly address: string,
    private readonly domain: string,
    private readonly origin: number,
    private readonly concurrency: number,
    private readonly rate: number,
    private readonly maxRequests: number,
  ) {}

  start(): void {
    this.nextSlot = performance.now();
    this.loops = Array.from({ length: this.concurrency }, () => this.loop());
  }

  private async loop(): Promise<void> {
    while (!this.stopped && this.records.length < this.maxRequests) {
      if (this.rate > 0) {
        const slot = this.nextSlot;
        this.nextSlot = Math.max(slot, performance.now() - 1000) + 1000 / this.rate;
        const wait = slot - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const start = performance.now() - this.origin;
      const r = await this.request();
      this.records.push({ ...r, start });
    }
  }

  private request(): Promise<HttpResult> {
    return httpGet(this.address, this.domain, PROBE_PATH, 10_000);
  }

  count(): number {
    return this.records.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

async function bench(): Promise<void> {
  const args = benchArgs(
    { runs: 1 },
    {
      deploys: { type: 'string' },
      concurrency: { type: 'string' },
      rate: { type: 'string' },
      'min-requests': { type: 'string' },
      steady: { type: 'string' },
    },
  );
  const num = (key: string, fallback: number, max: number) => {
    const raw = args[key];
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(n) || n < 0 || n > max) throw new BenchFailure(`--${key}: expected 0 to ${max}, found ${String(raw)}`);
    return n;
  };
  const deploys = num('deploys', 10, 50);
  const concurrency = num('concurrency', 4, 64);
  const rate = num('rate', 100, 5000);
  const minRequests = num('min-requests', 2000, 100_000);
  const steadyMs = num('steady', 5, 120) * 1000;
  // Bounded: never more than this many requests, whatever happens.
  const maxRequests = Math.max(minRequests * 5, 20_000);

  const project = await copyExample(EXAMPLE);
  let load: LoadGenerator | undefined;
  try {
    const domain = await projectDomain(project.dir);
    const appFile = path.join(project.dir, 'app.py');
    const base = await readFile(appFile, 'utf8');
    const [sb] = await setUpSandboxes([SANDBOX], project.dir, { keep: args.keep });
    const address = sb!.address;

    note('first deploy (version a)');
    await writeFile(appFile, appSource(base, 'a'));
    const first = await kraftwerk(['deploy', SANDBOX], { cwd: project.dir });
    if (first.code !== 0) throw new BenchFailure(`the first deploy failed (exit ${first.code}):\n${tailOf(first.stdout, first.stderr)}`);
    if (!(await waitForSite(address, domain, PROBE_PATH))) throw new BenchFailure(`the site does not answer ${PROBE_PATH} on ${address}`);

    const origin = performance.now();
    const now = () => performance.now() - origin;
    load = new LoadGenerator(address, domain, origin, concurrency, rate, maxRequests);
    note(`load: ${concurrency} at a time, ${rate || 'unlimited'} req/s, to http://${address}${PROBE_PATH} (Host: ${domain})`);
    load.start();
    await sleep(steadyMs);

    const plan = deployPlan(deploys);
    const records: DeployRecord[] = [];
    let lastEnd: number | undefined;
    for (const [i, version] of plan.entries()) {
      await writeFile(appFile, appSource(base, version));
      await afterSecondOf(lastEnd);
      const start = now();
      const d = await kraftwerk(['deploy', SANDBOX], { cwd: project.dir });
      lastEnd = Date.now();
      const rec: DeployRecord = { version, start, end: now(), code: d.code, tail: tailOf(d.stdout, d.stderr) };
      if (version === 'broken' && d.code === 0) rec.problem = 'the broken release was deployed with exit 0 (the health gate let it through)';
      if (version !== 'broken' && d.code !== 0) rec.problem = `the deploy of version ${version} failed (exit ${d.code})`;
      records.push(rec);
      note(`deploy ${i + 1}/${plan.length} (${version}): ${ms(rec.end - rec.start)}, exit ${d.code}, ${load.count()} requests so far`);
    }
    const deploysEnd = now();

    // Steady state afterwards, and on until enough requests were made (bounded).
    const extraDeadline = Date.now() + steadyMs + 120_000;
    await sleep(steadyMs);
    while (load.count() < minRequests && Date.now() < extraDeadline) await sleep(200);
    await load.stop();
    report(load.records, records, { rate, concurrency, minRequests, deploysEnd });
  } finally {
    await load?.stop();
    await project.cleanup();
  }
}

function tailOf(stdout: string, stderr: string): string {
  return `${stdout}\n${stderr}`.trim().split('\n').slice(-12).join('\n');
}

function report(
  requests: RequestRecord[],
  deploys: DeployRecord[],
  o: { rate: number; concurrency: number; minRequests: number; deploysEnd: number },
): void {
  const first = deploys[0]!.start;
  const during = (r: RequestRecord) => deploys.some((d) => r.start >= d.start && r.start <= d.end);
  const steady = (r: RequestRecord) => r.start < first || r.start > o.deploysEnd;
  const latency = (rs: RequestRecord[]) => {
    const t = rs.filter((r) => !failed(r)).map((r) => r.ms);
    return [rs.length, ms(percentile(t, 50)), ms(percentile(t, 99)), ms(Math.max(...t))];
  };
  const bad = requests.filter(failed);
  const out: string[] = [];
  out.push(`bench/load: examples/${EXAMPLE} on sandbox ${SANDBOX}; ${o.concurrency} requests at a time, at most ${o.rate || 'unlimited'}/s, a new connection each`);
  out.push('');
  out.push(
    table(
      ['deploy', 'version', 'time', 'exit', 'requests', 'failed'],
      deploys.map((d, i) => {
        const inside = requests.filter((r) => r.start >= d.start && r.start <= d.end);
        return [String(i + 1), d.version, ms(d.end - d.start), String(d.code), inside.length, inside.filter(failed).length];
      }),
    ),
  );
  out.push('');
  out.push(
    table(['requests', 'count', 'p50', 'p99', 'max'], [
      ['steady state', ...latency(requests.filter(steady))],
      ['during deploys', ...latency(requests.filter(during))],
      ['all', ...latency(requests)],
    ]),
  );
  const served = new Map<string, number>();
  for (const r of requests) if (!failed(r)) served.set(r.body.trim() || `(status ${r.status})`, (served.get(r.body.trim() || `(status ${r.status})`) ?? 0) + 1);
  out.push('');
  out.push(`answers by version: ${[...served].map(([v, n]) => `${v}: ${n}`).join(', ')}`);
  const kinds = new Map<string, number>();
  for (const r of bad) {
    const k = r.status !== undefined ? `HTTP ${r.status}` : (r.error ?? 'error');
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  out.push(`failed requests: ${bad.length} of ${requests.length}${bad.length ? ` (${[...kinds].map(([k, n]) => `${k}: ${n}`).join(', ')})` : ''}`);
  const problems = deploys.filter((d) => d.problem);
  for (const d of problems) out.push(`deploy problem: ${d.problem}\n${d.tail.replace(/^/gm, '    ')}`);
  const broken = deploys.find((d) => d.version === 'broken');
  if (broken && broken.code !== 0) out.push(`broken release refused as expected (exit ${broken.code}); its output ends:\n${broken.tail.replace(/^/gm, '    ')}`);
  const verdict =
    bad.length === 0 && problems.length === 0 && requests.length >= o.minRequests
      ? 'PASS: 0 failed requests'
      : `FAIL: ${bad.length} failed requests, ${problems.length} deploy problems, ${requests.length} requests (need ≥ ${o.minRequests})`;
  out.push('');
  out.push(verdict);
  process.stdout.write(`${out.join('\n')}\n`);
  if (!verdict.startsWith('PASS')) throw new BenchFailure(verdict);
}

await main(bench);
