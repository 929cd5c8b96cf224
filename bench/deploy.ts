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
 *   deploy = `kraftwerk --verbose deploy <sandbox> --timings`, the real CLI
 *   ansible, fabric = the same deploy done by the peers (bench/peers.ts)
 *
 * for (a) no change, (b) one changed file, (c) a changed requirements.txt
 * (Kraftwerk and the floor only), each `--runs` times (median), the tools
 * alternating within each run (kraftwerk, floor, ansible, fabric, kraftwerk,
 * …). Also reports the remote commands the deploy ran, the SSH logins it made
 * (from the sandbox's sshd log) and rsync's bytes sent. Run: npm run bench:deploy  (or node --import tsx bench/deploy.ts --runs 5)
 */
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import {
  Floor,
  benchArgs,
  copyExample,
  deployer,
  main,
  median,
  ms,
  note,
  projectConfig,
  projectDomain,
  ratio,
  remoteCommands,
  rsyncBytesSent,
  run,
  setUpSandboxes,
  table,
  timingsOf,
  settle as settleSites,
} from './lib.ts';
import { type Peer, makePeers } from './peers.ts';

const SANDBOX = 'bench-deploy';
const EXAMPLE = 'flask-hello';
interface Scenario {
  name: string;
  /** Change the project before a run (every tool sees the change). */
  change: (dir: string, run: number) => Promise<void>;
  /** Whether the peers run too (their playbook has no virtualenv step, so not for requirements). */
  peers: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: 'no change', change: async () => {}, peers: true },
  {
    name: 'one file changed',
    change: (dir, i) => appendFile(path.join(dir, 'app.py'), `# bench: one-file change ${i}\n`),
    peers: true,
  },
  {
    name: 'requirements changed',
    // A comment changes the requirements hash (new venv) without asking a package index.
    change: (dir, i) => appendFile(path.join(dir, 'requirements.txt'), `# bench: requirements change ${i}\n`),
    peers: false,
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
  /** The deploy's own `--timings` (cli start-up, each task, each phase). */
  timings: Map<string, number>;
  /** Wall time of each peer's deploy, by peer name. */
  peers: Map<string, number>;
}

async function bench(): Promise<void> {
  const args = benchArgs({ runs: 5 });
  const project = await copyExample(EXAMPLE);
  const peers: Peer[] = [];
  try {
    const domain = await projectDomain(project.dir);
    const [sandbox] = await setUpSandboxes([SANDBOX], project.dir, { keep: args.keep });
    const sb = sandbox!;
    const settle = () => settleSites([sb], domain);

    note('first deploy');
    const deploy = deployer(project.dir);
    const first = await deploy(SANDBOX, 'first', { verbose: true });
    await settle();

    const floor = new Floor(sb, project.dir, EXAMPLE);
    await floor.prepare();
    await floor.measure(); // the floor's own "first deploy": a full copy, not measured
    await settle();
    const config = await projectConfig(project.dir);
    peers.push(...makePeers({ sandbox: sb, source: project.dir, site: EXAMPLE, domain, wsgi: config.wsgi, workers: config.workers }));
    for (const peer of peers) {
      note(`${peer.name}: install when missing, first deploy (not measured)`);
      await peer.prepare();
      await settle();
    }

    const results = new Map<string, Sample[]>();
    for (const scenario of SCENARIOS) {
      const samples: Sample[] = [];
      for (let i = 1; i <= args.runs; i++) {
        await scenario.change(project.dir, i);
        const loginsBefore = await sb.logins();
        const wireBefore = await sb.bytesToSandbox();
        const d = await deploy(SANDBOX, `${scenario.name}, run ${i}`, { verbose: true, timings: true });
        const logins = (await sb.logins()) - loginsBefore;
        const wireBytes = (await sb.bytesToSandbox()) - wireBefore;
        await settle();

        const f = await floor.measure();
        // `sv hup` returns at once; the app is serving again once a request gets through.
        const readyFrom = performance.now();
        await settle();
        const floorReadyMs = f.ms + (performance.now() - readyFrom);

        const peerMs = new Map<string, number>();
        for (const peer of scenario.peers ? peers : []) {
          peerMs.set(peer.name, await peer.measure());
          await settle();
        }
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
          timings: timingsOf(d.stdout + d.stderr),
          peers: peerMs,
        };
        samples.push(sample);
        const peerNote = [...peerMs].map(([n, t]) => `, ${n} ${ms(t)}`).join('');
        note(`${scenario.name} ${i}/${args.runs}: deploy ${ms(sample.deployMs)}, floor ${ms(sample.floorMs)}${peerNote}, ${sample.commands ?? '?'} commands, ${logins} logins`);
      }
      results.set(scenario.name, samples);
    }
    report(results, args.runs, first.ms, peers.map((p) => p.name));
  } finally {
    for (const peer of peers) await peer.cleanup();
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

function report(results: Map<string, Sample[]>, runs: number, firstMs: number, peerNames: string[]): void {
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

  // The peers, beside Kraftwerk and the floor of the same runs.
  const peerRows: (string | number)[][] = [];
  for (const [name, s] of results) {
    if (!s.some((x) => x.peers.size)) continue;
    const floor = median(s.map((x) => x.floorMs));
    const deploy = median(s.map((x) => x.deployMs));
    const ansible = median(s.map((x) => x.peers.get('ansible') ?? Number.NaN));
    for (const [tool, t] of [['kraftwerk', deploy], ...peerNames.map((p) => [p, median(s.map((x) => x.peers.get(p)!))] as const)] as const) {
      peerRows.push([name, tool, ms(t), ratio(t, floor), ratio(t, ansible), ratio(ansible, t)]);
    }
  }
  out.push('');
  out.push('against the floor and the peers (same runs, alternating):');
  out.push(table(['scenario', 'tool', 'median', '/ floor', '/ ansible', 'ansible / tool'], peerRows));

  const med = (scenario: string, pick: (x: Sample) => number) => median(results.get(scenario)!.map(pick));
  const goal = (label: string, value: number, limit: number, atMost: boolean) =>
    `  ${label.padEnd(38)} ${value.toFixed(2)}×  ${(atMost ? value <= limit : value >= limit) ? 'met' : 'NOT met'}`;
  const noChange = results.get('no change')!;
  const commands = Math.max(...noChange.map((x) => x.commands ?? Number.POSITIVE_INFINITY));
  const logins = Math.max(...noChange.map((x) => x.logins));
  out.push('');
  out.push('goals (issue 15):');
  out.push(goal('no change ≤ 1.2× the floor', med('no change', (x) => x.deployMs) / med('no change', (x) => x.floorMs), 1.2, true));
  out.push(goal('one file ≤ 1.5× the floor+ready', med('one file changed', (x) => x.deployMs) / med('one file changed', (x) => x.floorReadyMs), 1.5, true));
  out.push(goal('ansible ≥ 4× the no-change deploy', med('no change', (x) => x.peers.get('ansible')!) / med('no change', (x) => x.deployMs), 4, false));
  out.push(goal('ansible ≥ 2.5× the one-file deploy', med('one file changed', (x) => x.peers.get('ansible')!) / med('one file changed', (x) => x.deployMs), 2.5, false));
  out.push(`  remote commands (no change)            ${Number.isFinite(commands) ? commands : 'n/a'}`);
  out.push(`  SSH logins (no change; 1 + rsync's)    ${logins}`);
  // The CLI's own share: what passes in the process before the first task (Node, then loading Kraftwerk).
  const cliRows = [...results].map(([name, s]) => {
    const startup = median(s.map((x) => x.timings.get('cli start-up') ?? Number.NaN));
    const deploy = median(s.map((x) => x.deployMs));
    return [name, ms(startup), ms(deploy), `${((100 * startup) / deploy).toFixed(0)} %`];
  });
  out.push('');
  out.push("the CLI's share (cli start-up from --timings: from Node's start until the deploy command begins):");
  out.push(table(['scenario', 'cli start-up', 'deploy', 'share'], cliRows));
  for (const [name, s] of results) {
    out.push('');
    out.push(`where the time goes, ${name} (deploy --timings, median over runs):`);
    out.push(table(['phase and task', 'time'], medianTimings(s).map(([t, d]) => [t, ms(d)])));
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

/**
 * Each `--timings` line's median across the runs that printed it, in the order the deploy printed them.
 * Left out: lines under 5 ms, and lines of fewer than half the runs (a no-change scenario's first run
 * may deploy after all: its tasks are not what a no-change deploy spends its time on).
 */
function medianTimings(samples: Sample[]): [string, number][] {
  const keys = [...new Set(samples.flatMap((s) => [...s.timings.keys()]))];
  return keys
    .map((k) => samples.map((s) => s.timings.get(k)).filter((v): v is number => v !== undefined))
    .map((values, i) => [keys[i]!, median(values), values.length] as const)
    .filter(([, d, n]) => d >= 5 && 2 * n >= samples.length)
    .map(([k, d]) => [k, d] as [string, number]);
}

await main(bench);
