/**
 * bench/deploy: how close a deploy of examples/flask-hello to a sandbox comes
 * to the least any deploy tool must do, measured in the same run.
 *
 *   floor  = rsync of the same tree into a new folder on the sandbox (with
 *            --link-dest to the previous one, the same arguments core uses)
 *            + one OpenSSH command that reloads the app (`sv hup` of the
 *            site's runit service)
 *   floor+ready = the floor, then until the reloaded app answers a request
 *            (`sv hup` returns at once; a deploy that checks its result waits)
 *   deploy = `kraftwerk --verbose deploy <sandbox>`, the real CLI
 *
 * for (a) no change, (b) one changed file, (c) a changed requirements.txt,
 * each `--runs` times (median). Also reports the remote commands the deploy
 * ran, the SSH logins it made (from the sandbox's sshd log) and rsync's bytes
 * sent. Run: npm run bench:deploy  (or node --import tsx bench/deploy.ts --runs 5)
 */
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import { buildRsyncArgs, runRsync } from '../core/remote/rsync.ts';
import { sshArgv } from '../tools/sandbox/commands.ts';
import {
  BenchFailure,
  type BenchSandbox,
  afterSecondOf,
  benchArgs,
  copyExample,
  kraftwerk,
  main,
  median,
  ms,
  note,
  projectDomain,
  ratio,
  remoteCommands,
  rsyncBytesSent,
  run,
  setUpSandboxes,
  table,
  taskDurations,
  waitForSite,
} from './lib.ts';

const SANDBOX = 'bench-deploy';
const EXAMPLE = 'flask-hello';
/** The site's live web slot (the site name is the project folder's name): the one without a `down` file. */
const LIVE_SLOT = `$(for s in /etc/service/kraftwerk-${EXAMPLE}@*; do [ -e "$s/down" ] || echo "$s"; done)`;
const FLOOR_DIR = '/root/kraftwerk-bench-floor';

interface Scenario {
  name: string;
  /** Change the project before a run (both floor and deploy see the change). */
  change: (dir: string, run: number) => Promise<void>;
}

const SCENARIOS: Scenario[] = [
  { name: 'no change', change: async () => {} },
  {
    name: 'one file changed',
    change: (dir, i) => appendFile(path.join(dir, 'app.py'), `# bench: one-file change ${i}\n`),
  },
  {
    name: 'requirements changed',
    // A comment changes the requirements hash (new venv) without asking a package index.
    change: (dir, i) => appendFile(path.join(dir, 'requirements.txt'), `# bench: requirements change ${i}\n`),
  },
];

interface Sample {
  deployMs: number;
  floorMs: number;
  /** The floor plus the wait until the reloaded app answers (what a deploy that checks its result must also wait for). */
  floorReadyMs: number;
  commands?: number;
  logins: number;
  bytesSent?: number;
  floorBytesSent: number;
  /** Everything sent to the sandbox during the deploy (SSH commands, files, rsync), from its network link. */
  wireBytes: number;
  floorWireBytes: number;
  tasks: [string, number][];
}

/** The floor: what a hand-written `rsync && ssh sv hup` costs against the same sandbox. */
class Floor {
  private previous?: string;
  private count = 0;

  constructor(
    private readonly sandbox: BenchSandbox,
    private readonly source: string,
  ) {}

  async prepare(): Promise<void> {
    const r = await run(sshArgv(this.sandbox.target, ['sh', '-c', `rm -rf ${FLOOR_DIR} && mkdir -p ${FLOOR_DIR}`]));
    if (r.code !== 0) throw new BenchFailure(`cannot make ${FLOOR_DIR} on the sandbox: ${r.stderr.trim()}`);
  }

  async measure(): Promise<{ ms: number; bytesSent: number; wireBytes: number }> {
    const dest = `${FLOOR_DIR}/${++this.count}`;
    const args = buildRsyncArgs({ target: this.sandbox.target, source: this.source, dest, linkDest: this.previous, excludes: [] });
    const wireBefore = await this.sandbox.bytesToSandbox();
    const started = performance.now();
    const stats = await runRsync(args, undefined, SANDBOX);
    const hup = await run(sshArgv(this.sandbox.target, ['sh', '-c', `sv hup ${LIVE_SLOT}`]));
    const elapsed = performance.now() - started;
    if (hup.code !== 0) throw new BenchFailure(`floor: sv hup of the live slot failed (exit ${hup.code}): ${hup.stderr.trim()}`);
    this.previous = dest;
    return { ms: elapsed, bytesSent: stats.bytesSent, wireBytes: (await this.sandbox.bytesToSandbox()) - wireBefore };
  }
}

async function bench(): Promise<void> {
  const args = benchArgs({ runs: 5 });
  const project = await copyExample(EXAMPLE);
  try {
    const domain = await projectDomain(project.dir);
    const [sandbox] = await setUpSandboxes([SANDBOX], project.dir, { keep: args.keep });
    const sb = sandbox!;
    const settle = async () => {
      // A reload that is still going on would slow the next measurement down.
      if (!(await waitForSite(sb.address, domain, '/health'))) throw new BenchFailure(`the site does not answer on ${sb.address} (Host: ${domain})`);
    };

    note('first deploy');
    const first = await kraftwerk(['--verbose', 'deploy', SANDBOX], { cwd: project.dir });
    if (first.code !== 0) throw new BenchFailure(`the first deploy failed (exit ${first.code}):\n${`${first.stdout}\n${first.stderr}`.trim().split('\n').slice(-25).join('\n')}`);
    await settle();

    const floor = new Floor(sb, project.dir);
    await floor.prepare();
    await floor.measure(); // the floor's own "first deploy": a full copy, not measured
    await settle();

    let lastDeployEnd = Date.now();
    const results = new Map<string, Sample[]>();
    for (const scenario of SCENARIOS) {
      const samples: Sample[] = [];
      for (let i = 1; i <= args.runs; i++) {
        await scenario.change(project.dir, i);
        const f = await floor.measure();
        // `sv hup` returns at once; the app is serving again once a request gets through.
        const readyFrom = performance.now();
        await settle();
        const floorReadyMs = f.ms + (performance.now() - readyFrom);

        await afterSecondOf(lastDeployEnd);
        const loginsBefore = await sb.logins();
        const wireBefore = await sb.bytesToSandbox();
        const d = await kraftwerk(['--verbose', 'deploy', SANDBOX], { cwd: project.dir });
        lastDeployEnd = Date.now();
        const logins = (await sb.logins()) - loginsBefore;
        const wireBytes = (await sb.bytesToSandbox()) - wireBefore;
        if (d.code !== 0) {
          throw new BenchFailure(
            `deploy (${scenario.name}, run ${i}) failed (exit ${d.code}):\n${`${d.stdout}\n${d.stderr}`.trim().split('\n').slice(-25).join('\n')}`,
          );
        }
        await settle();
        const sample: Sample = {
          deployMs: d.ms,
          floorMs: f.ms,
          floorReadyMs,
          commands: remoteCommands(d.stdout, SANDBOX),
          logins,
          bytesSent: rsyncBytesSent(d.stdout),
          floorBytesSent: f.bytesSent,
          wireBytes,
          floorWireBytes: f.wireBytes,
          tasks: taskDurations(d.lines),
        };
        samples.push(sample);
        note(`${scenario.name} ${i}/${args.runs}: deploy ${ms(sample.deployMs)}, floor ${ms(sample.floorMs)}, ${sample.commands ?? '?'} commands, ${logins} logins`);
      }
      results.set(scenario.name, samples);
    }
    report(results, args.runs, first.ms);
  } finally {
    await project.cleanup();
  }
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

const fmtMax = (xs: (number | undefined)[]) => {
  const known = xs.filter((x): x is number => x !== undefined);
  if (!known.length) return 'n/a';
  const lo = Math.min(...known);
  const hi = Math.max(...known);
  return lo === hi ? String(lo) : `${lo}–${hi}`;
};

function report(results: Map<string, Sample[]>, runs: number, firstMs: number): void {
  const rows = [...results].map(([name, s]) => {
    const deploy = median(s.map((x) => x.deployMs));
    const floor = median(s.map((x) => x.floorMs));
    const ready = median(s.map((x) => x.floorReadyMs));
    return [
      name,
      ms(deploy),
      ms(floor),
      ratio(deploy, floor),
      ms(ready),
      ratio(deploy, ready),
      fmtMax(s.map((x) => x.commands)),
      fmtMax(s.map((x) => x.logins)),
      fmtMax(s.map((x) => x.bytesSent)),
      fmtMax(s.map((x) => x.floorBytesSent)),
      `${kib(median(s.map((x) => x.wireBytes)))} / ${kib(median(s.map((x) => x.floorWireBytes)))}`,
    ];
  });
  const out: string[] = [];
  out.push(`bench/deploy: examples/${EXAMPLE} to sandbox ${SANDBOX}, median of ${runs} runs each (first deploy: ${ms(firstMs)})`);
  out.push('');
  out.push(table(['scenario', 'deploy', 'floor', 'ratio', 'floor+ready', 'ratio', 'remote cmds', 'ssh logins', 'rsync sent', 'floor rsync', 'on the wire: deploy / floor'], rows));
  out.push('floor = rsync of the tree + `ssh sv hup`; floor+ready = the same until the reloaded app answers a request');
  out.push("rsync sent = rsync's own \"Total bytes sent\"; on the wire = all bytes to the sandbox (SSH handshakes, commands, files, rsync)");
  const noChange = results.get('no change')!;
  const ratioNoChange = median(noChange.map((x) => x.deployMs)) / median(noChange.map((x) => x.floorMs));
  const commands = Math.max(...noChange.map((x) => x.commands ?? Number.POSITIVE_INFINITY));
  const logins = Math.max(...noChange.map((x) => x.logins));
  out.push('');
  out.push('goals (no change):');
  out.push(`  ratio to floor ≤ 1.5×     ${ratioNoChange.toFixed(2)}×  ${ratioNoChange <= 1.5 ? 'met' : 'NOT met'}`);
  out.push(`  remote commands ≤ 10      ${Number.isFinite(commands) ? commands : 'n/a'}  ${commands <= 10 ? 'met' : 'NOT met'}`);
  out.push(`  SSH logins = 1 + rsync's  ${logins}  ${logins <= 2 ? 'met' : 'NOT met'}`);
  out.push(`  under 2 s (issue 4)       ${ms(median(noChange.map((x) => x.deployMs)))}  ${median(noChange.map((x) => x.deployMs)) < 2000 ? 'met' : 'NOT met'}`);
  for (const [name, s] of results) {
    out.push('');
    out.push(`slowest tasks, ${name} (median over runs):`);
    out.push(table(['task', 'time'], slowestTasks(s).map(([t, d]) => [t, ms(d)])));
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

/** Tasks by median time across runs (titles with release ids or byte counts are grouped by their first words). */
function slowestTasks(samples: Sample[], top = 8): [string, number][] {
  const byTitle = new Map<string, number[]>();
  for (const s of samples) {
    for (const [title, d] of s.tasks) {
      const key = title.replace(/\d{8}T\d{6}Z/g, '<id>').replace(/\(\d+ bytes sent\)/, '(… bytes sent)');
      byTitle.set(key, [...(byTitle.get(key) ?? []), d]);
    }
  }
  return [...byTitle]
    .map(([t, ds]) => [t, median(ds)] as [string, number])
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
}

await main(bench);
